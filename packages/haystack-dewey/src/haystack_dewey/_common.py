"""Glue shared by the components: device resolution, lazy encoder loading, input checks."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, TypeVar

from haystack import Document, default_from_dict
from haystack.utils import ComponentDevice, Secret, deserialize_secrets_inplace
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from dewey_core import DeweyEncoder
from dewey_core.client import RemoteEncoder

DEFAULT_MODEL = "infgrad/dewey_en_beta"
DEFAULT_JASPER_MODEL = "NovaSearch/jasper_en_vision_language_v1"
SOURCE_ID_FIELD = "dewey_source_id"
"""Metadata field of a source document (``DeweyLateChunker``'s ``sources`` output): the id its
chunks carry in ``source_id``; the fusion looks sources up by it."""
SOURCE_HASH_FIELD = "dewey_source_hash"
"""Metadata field of chunks and sources: a digest of the source text they were embedded from.
A chunk's vector depends on its whole source, so an edited source gives its chunks new ids
(the id hashes metadata) and the fusion can tell a stale source from a current one."""
_MODEL_KWARGS = {"torch_dtype": "dtype", "dtype": "dtype", "attn_implementation": "attention"}
"""SentenceTransformers' ``model_kwargs`` (Hugging Face loading options) and what they set here."""


def default_token() -> Secret:
    """The Hugging Face token, as Haystack's SentenceTransformers components read it."""
    return Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False)


def resolve_device(device: ComponentDevice | str | None) -> ComponentDevice:
    """A :class:`ComponentDevice`; a plain string such as ``"cpu"`` or ``"cuda:0"`` is accepted."""
    if isinstance(device, str):
        return ComponentDevice.from_str(device)
    if device is not None and not isinstance(device, ComponentDevice):
        raise TypeError(f"device must be a ComponentDevice, a str such as 'cuda:0', or None; "
                        f"got {type(device).__name__}")
    return ComponentDevice.resolve_device(device)


def load_encoder(model: str, device: ComponentDevice, dtype: str | None, max_length: int | None,
                 token_budget: int | None, model_options: dict[str, Any] | None,
                 batch_size: int | None = None, **hub: Any) -> DeweyEncoder:
    """Load the encoder; the model itself is shared per (model, device, dtype) by dewey_core.
    ``hub`` holds ``token`` and ``local_files_only`` (where a Hugging Face id is found)."""
    return DeweyEncoder.from_pretrained(model, device=device.to_torch_str(), dtype=dtype,
                                        max_length=max_length, token_budget=token_budget,
                                        batch_size=batch_size, **(model_options or {}), **hub)


def text_digest(text: str) -> str:
    """A short digest of a source text (:data:`SOURCE_HASH_FIELD`)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def encoder_parameters(component: Any) -> dict[str, Any]:
    """The loading parameters every component serialises, in one place."""
    model_kwargs = dict(component.model_kwargs) if component.model_kwargs is not None else None
    if model_kwargs:
        serialize_hf_model_kwargs(model_kwargs)  # torch.float32 -> "torch.float32", as Haystack's
    return {
        "model": component.model,
        "device": component.device.to_dict(),
        "dtype": component.dtype,
        "max_length": component.max_length,
        "token_budget": component.token_budget,
        "batch_size": component.batch_size,
        "model_options": component.model_options,
        "model_kwargs": model_kwargs,
        "token": component.token.to_dict() if component.token is not None else None,
        "local_files_only": component.local_files_only,
        "trust_remote_code": component.trust_remote_code,
        "api_base_url": component.api_base_url,
        "api_key": component.api_key.to_dict() if component.api_key is not None else None,
    }


def output_dim(dim: int | None, truncate_dim: int | None) -> int | None:
    """``dim``, or SentenceTransformers' name for it, ``truncate_dim`` (set at most one)."""
    if dim is not None and truncate_dim is not None and dim != truncate_dim:
        raise ValueError(f"dim={dim} and truncate_dim={truncate_dim} disagree; set one of them")
    value = dim if dim is not None else truncate_dim
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"dim must be a positive int or None, got {value!r}")
    return value


def check_normalized(normalize_embeddings: bool) -> None:
    if normalize_embeddings is not True:
        raise ValueError("normalize_embeddings=False is not supported: Dewey embeddings are always "
                         "L2-normalised (their dot product is their cosine)")


_Component = TypeVar("_Component", bound="EncoderComponent")


class EncoderComponent:
    """Base of the components that run a Dewey encoder: its loading parameters, lazy loading and
    deserialisation. Subclasses keep their own keyword-only ``__init__`` (Haystack reads its
    parameters) and ``to_dict``, and pass the loading parameters to :meth:`_set_encoder_params`.

    Usage example:
    ```python
    from haystack import component
    from haystack_dewey._common import EncoderComponent

    @component
    class QueryLength(EncoderComponent):
        def __init__(self, *, model: str = "infgrad/dewey_en_beta", device: str | None = None) -> None:
            self._set_encoder_params(model=model, device=device)

        @component.output_types(tokens=int)
        def run(self, text: str) -> dict[str, int]:
            self.warm_up()
            return {"tokens": self._encoder.count_tokens([text])[0]}
    ```
    """

    model: str
    device: ComponentDevice
    dtype: str | None
    max_length: int | None
    token_budget: int | None
    batch_size: int | None
    model_options: dict[str, Any] | None
    model_kwargs: dict[str, Any] | None
    token: Secret | None
    local_files_only: bool
    trust_remote_code: bool
    api_base_url: str | None
    api_key: Secret | None
    _encoder: DeweyEncoder | RemoteEncoder | None

    def _set_encoder_params(self, *, model: str, device: ComponentDevice | str | None,
                            dtype: str | None = None, max_length: int | None = None,
                            token_budget: int | None = None, batch_size: int | None = None,
                            model_options: dict[str, Any] | None = None,
                            model_kwargs: dict[str, Any] | None = None, token: Secret | None = None,
                            local_files_only: bool = False, trust_remote_code: bool = False,
                            api_base_url: str | None = None, api_key: Secret | None = None) -> None:
        """Stores the loading parameters (the device resolved, every value checked); the model
        loads on :meth:`warm_up`.

        With ``api_base_url`` (a ``dewey serve`` server) the model runs there instead, and
        ``device``/``dtype``/``max_length``/``token_budget``/``batch_size``/``model_options``
        are the server's; ``api_key`` defaults to the ``DEWEY_API_KEY`` environment variable.
        A ``model`` other than the component's default must then be the served model's name
        (``GET /v1/models``), or the first call fails with a 404 naming what is served.
        """
        if not isinstance(model, str) or not model:
            raise TypeError(f"model must be a non-empty str, got {model!r}")
        for name, value in (("max_length", max_length), ("token_budget", token_budget),
                            ("batch_size", batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        unknown = sorted(set(model_kwargs or {}) - set(_MODEL_KWARGS))
        if unknown:
            raise ValueError(f"model_kwargs: unsupported key(s) {', '.join(unknown)}; supported: "
                             f"{', '.join(_MODEL_KWARGS)} (model family options go in model_options)")
        if token is not None and not isinstance(token, Secret):
            raise TypeError(f"token must be a haystack Secret (e.g. Secret.from_env_var('HF_TOKEN')), "
                            f"got {type(token).__name__}")
        self.model = model
        self.device = resolve_device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.token_budget = token_budget
        self.batch_size = batch_size
        self.model_options = model_options
        self.model_kwargs = model_kwargs
        self.token = token
        self.local_files_only = local_files_only
        self.trust_remote_code = trust_remote_code
        self.api_base_url = api_base_url
        self.api_key = api_key
        self._encoder = None
        self._loading_options()  # conflicting settings are refused now, not at warm_up

    def _loading_options(self) -> tuple[str | None, dict[str, Any]]:
        """The dtype and the dewey-core model options, SentenceTransformers' ``model_kwargs``
        and ``trust_remote_code`` folded in."""
        options, dtype = dict(self.model_options or {}), self.dtype
        for key, value in (self.model_kwargs or {}).items():
            if _MODEL_KWARGS[key] == "dtype":
                value = str(value).removeprefix("torch.")
                if dtype is not None and dtype != value:
                    raise ValueError(f"dtype={dtype!r} and model_kwargs[{key!r}]={value!r} disagree")
                dtype = value
            else:
                options[_MODEL_KWARGS[key]] = value
        if self.trust_remote_code:
            options["trust_remote_code"] = True
        return dtype, options

    @classmethod
    def from_dict(cls: type[_Component], data: dict[str, Any]) -> _Component:
        """Deserializes the component from a dictionary (which is left as it was)."""
        params = dict(data.get("init_parameters", {}))
        deserialize_secrets_inplace(params, keys=["api_key"])
        if params.get("model_kwargs"):
            params["model_kwargs"] = dict(params["model_kwargs"])
            deserialize_hf_model_kwargs(params["model_kwargs"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def warm_up(self) -> None:
        """Loads the model once; later calls do nothing."""
        if self._encoder is None:
            self._encoder = self._load_encoder()

    @classmethod
    def _default_model(cls) -> str | None:
        """The default of ``__init__``'s ``model`` parameter."""
        default = inspect.signature(cls.__init__).parameters.get("model")
        return default.default if default is not None else None

    def _load_encoder(self) -> DeweyEncoder | RemoteEncoder:
        """Loads the encoder from the stored parameters; a subclass may check what it got."""
        if self.api_base_url:
            key = (self.api_key or Secret.from_env_var("DEWEY_API_KEY", strict=False)).resolve_value()
            # A model other than the component's default must be the one served (checked on the
            # first call); the default takes whatever the server serves.
            served = None if self.model == self._default_model() else self.model
            return RemoteEncoder(self.api_base_url, api_key=key, model=served)
        dtype, options = self._loading_options()
        hub: dict[str, Any] = {"local_files_only": True} if self.local_files_only else {}
        token = self.token.resolve_value() if self.token is not None else None
        if token:
            hub["token"] = token
        return load_encoder(self.model, self.device, dtype, self.max_length, self.token_budget,
                            options or None, self.batch_size, **hub)


def check_documents(documents: Any, component: str, hint: str) -> list[Document]:
    """``documents`` must be a list of :class:`Document`; the error names the component and a fix."""
    if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
        got = type(documents).__name__ if not isinstance(documents, list) else \
            f"a list holding {type(next(d for d in documents if not isinstance(d, Document))).__name__}"
        raise TypeError(f"{component} expects a list of Documents as input, got {got}. {hint}")
    return documents


def check_text(text: Any, component: str, hint: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{component} expects a string as input, got {type(text).__name__}. {hint}")
    return text


def text_to_embed(document: Document, meta_fields_to_embed: list[str], separator: str,
                  prefix: str = "", suffix: str = "") -> str:
    """Haystack's convention: listed metadata values, then the content, joined by ``separator``."""
    meta_values = [str(document.meta[key]) for key in meta_fields_to_embed
                   if document.meta.get(key) is not None]
    return prefix + separator.join([*meta_values, document.content or ""]) + suffix


def page_number(text: str, start: int, chunk: str) -> int:
    """Haystack's ``page_number``: the page (form feeds counted from 1) of the chunk's first
    non-page-break character; a chunk that is only page breaks stays on the page it starts on."""
    leading = len(chunk) - len(chunk.lstrip("\f"))
    if leading == len(chunk):
        leading = 0
    return 1 + text.count("\f", 0, start) + leading
