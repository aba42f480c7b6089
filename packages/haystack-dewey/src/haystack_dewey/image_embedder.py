"""Image document embedder for Jasper, whose image vectors share the space of its text vectors."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, component, default_to_dict
from haystack.utils import ComponentDevice, Secret

from dewey_core import DeweyEncoder
from haystack_dewey._common import (
    DEFAULT_JASPER_MODEL,
    EncoderComponent,
    check_documents,
    default_token,
    encoder_parameters,
    output_dim,
)


@component
class DeweyImageDocumentEmbedder(EncoderComponent):
    """Embeds the image each Document points to, following Haystack's image embedders: the file
    path sits in ``meta[file_path_meta_field]``, resolved against ``root_path``. A Document without
    that field may carry the image bytes in ``blob`` instead (a ByteStream with an ``image/*`` mime
    type or none; the bytes are decoded to tell). Every image is opened before the model runs, so
    an unreadable one is named by its document.

    Query with :class:`~haystack_dewey.DeweyTextEmbedder` on the same Jasper model: text and
    image vectors share one space.

    Usage example:
    ```python
    from haystack import Document
    from haystack_dewey import DeweyImageDocumentEmbedder, DeweyTextEmbedder

    images = DeweyImageDocumentEmbedder(root_path="photos")  # Jasper by default
    docs = images.run([Document(content="a cat", meta={"file_path": "cat.jpg"})])["documents"]
    query = DeweyTextEmbedder(model="NovaSearch/jasper_en_vision_language_v1").run("a sleeping cat")
    ```
    """

    def __init__(
        self,
        *,
        file_path_meta_field: str = "file_path",
        root_path: str | None = None,
        model: str = DEFAULT_JASPER_MODEL,
        device: ComponentDevice | str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        token_budget: int | None = None,
        batch_size: int | None = None,
        model_options: dict[str, Any] | None = None,
        api_base_url: str | None = None,
        api_key: Secret | None = None,
        dim: int | None = None,
        progress_bar: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        token: Secret | None = default_token(),  # noqa: B008 (Haystack's convention)
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        truncate_dim: int | None = None,
    ) -> None:
        """
        :param file_path_meta_field: Metadata field with the image's file path.
        :param root_path: Directory the file paths are relative to; ``None`` takes them as given.
        :param model: Hugging Face id or local directory of a model that embeds images (Jasper).
        :param device: Device to run on (default: CUDA when available, else CPU).
        :param dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``; default bfloat16 on CUDA.
        :param max_length: Tokens per sequence (default: the model's own limit).
        :param token_budget: Tokens per forward batch (default 2048 on CPU, 16384 on GPU).
        :param batch_size: At most this many texts per forward batch, on top of ``token_budget``
            (default: no cap).
        :param model_options: Family options passed to the loader.
        :param api_base_url: A ``dewey serve`` server (e.g. ``"http://gpu-box:8080"``): the model runs
            there, and the loading options above are the server\'s; a ``model`` other than the
            default must name the served model (checked on the first call).
        :param api_key: The server\'s ``--api-key`` (default: the ``DEWEY_API_KEY`` environment variable).
        :param dim: Output size (Jasper has a trained head per size: 12288/1024/512/256).
        :param progress_bar: Show a progress bar.
        :param model_kwargs: SentenceTransformers' loading options: ``torch_dtype`` (= ``dtype``),
            ``attn_implementation``.
        :param token: Hugging Face token for private models (default: ``HF_API_TOKEN`` /
            ``HF_TOKEN`` from the environment).
        :param local_files_only: Only look in the local Hugging Face cache, never download.
        :param trust_remote_code: Run the checkpoint's own code.
        :param truncate_dim: SentenceTransformers' name for ``dim``.
        """
        self.file_path_meta_field = file_path_meta_field
        self.root_path = root_path
        self._set_encoder_params(model=model, device=device, dtype=dtype, max_length=max_length,
                                 token_budget=token_budget, batch_size=batch_size,
                                 model_options=model_options, model_kwargs=model_kwargs, token=token,
                                 local_files_only=local_files_only, trust_remote_code=trust_remote_code,
                                 api_base_url=api_base_url, api_key=api_key)
        self.dim = output_dim(dim, truncate_dim)
        self.progress_bar = progress_bar

    def to_dict(self) -> dict[str, Any]:
        """Serializes the component to a dictionary."""
        return default_to_dict(self, file_path_meta_field=self.file_path_meta_field,
                               root_path=self.root_path, **encoder_parameters(self), dim=self.dim,
                               progress_bar=self.progress_bar)

    def warm_up(self) -> None:
        """Loads the model once (and checks it embeds images); later calls do nothing."""
        # Haystack's @component rebuilds the class, so zero-argument super() cannot be used here.
        EncoderComponent.warm_up(self)

    def _load_encoder(self) -> DeweyEncoder:
        encoder = EncoderComponent._load_encoder(self)
        if not getattr(encoder, "supports_images", False):
            raise ValueError(f"model {self.model!r} does not embed images; use a Jasper model "
                             f"(e.g. {DEFAULT_JASPER_MODEL!r})")
        return encoder

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embeds the image of each document.

        :param documents: Documents pointing to images; they are not modified.
        :returns: ``{"documents": ...}``: copies with ``embedding`` set and
            ``meta["embedding_source"] = {"type": "image", "file_path_meta_field": ...}``.
        :raises TypeError: If ``documents`` is not a list of Documents.
        :raises ValueError: A document with neither an existing image file nor an image blob, or
            whose image cannot be read (the message names the document).
        """
        check_documents(documents, "DeweyImageDocumentEmbedder", "Each Document needs the image path "
                        "in meta; to embed a string, use DeweyTextEmbedder.")
        sources = [self._image_source(d) for d in documents]
        for doc, source in zip(documents, sources, strict=True):
            _check_readable(doc, source)
        self.warm_up()
        vectors = self._encoder.encode_images(sources, self.dim, show_progress=self.progress_bar)
        source_info = {"type": "image", "file_path_meta_field": self.file_path_meta_field}
        return {"documents": [replace(d, embedding=v.tolist(),
                                      meta={**d.meta, "embedding_source": source_info})
                              for d, v in zip(documents, vectors, strict=True)]}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Like :meth:`run`, computed in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.run, documents)

    def _image_source(self, doc: Document) -> str | bytes:
        """The image file path (resolved against ``root_path``) or, failing that, the blob bytes."""
        value = doc.meta.get(self.file_path_meta_field)
        if value is not None:
            path = Path(self.root_path or "") / str(value)
            if path.suffix.lower() == ".pdf":
                raise ValueError(f"Document {doc.id}: {path} is a PDF; convert its pages to images first "
                                 "(e.g. Haystack's PDFToImageContent) and store their paths or bytes")
            if not path.is_file():
                where = f"meta[{self.file_path_meta_field!r}]" + ("" if self.root_path is None
                                                                  else " under root_path")
                raise ValueError(f"Document {doc.id}: image file {str(path)!r} ({where}) does not exist")
            return str(path)
        blob = doc.blob
        if blob is not None and (blob.mime_type is None or blob.mime_type.startswith("image/")):
            return blob.data
        got = "no blob" if blob is None else f"a {blob.mime_type} blob"
        raise ValueError(f"Document {doc.id} has no meta[{self.file_path_meta_field!r}] and {got}; set the "
                         "image path in that field (see file_path_meta_field) or the image bytes as its blob")


def _check_readable(doc: Document, source: str | bytes) -> None:
    """Open the image (without decoding all of it) so that a bad one is named by its document."""
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source if isinstance(source, str) else BytesIO(source)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        what = source if isinstance(source, str) else f"its blob ({len(source)} bytes)"
        raise ValueError(f"Document {doc.id}: {what} is not a readable image ({error})") from error
