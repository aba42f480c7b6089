"""Glue shared by the components: device resolution, lazy encoder loading, input checks."""

from __future__ import annotations

from typing import Any, TypeVar

from haystack import Document, default_from_dict
from haystack.utils import ComponentDevice, Secret, deserialize_secrets_inplace

from dewey_core import DeweyEncoder
from dewey_core.client import RemoteEncoder

DEFAULT_MODEL = "infgrad/dewey_en_beta"
DEFAULT_JASPER_MODEL = "infgrad/jasper_en_vision_language_v1"
GLOBAL_EMBEDDING_FIELD = "dewey_global_embedding"
"""Chunk metadata field holding the embedding of the whole source document."""


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
                 batch_size: int | None = None) -> DeweyEncoder:
    """Load the encoder; the model itself is shared per (model, device, dtype) by dewey_core."""
    return DeweyEncoder.from_pretrained(model, device=device.to_torch_str(), dtype=dtype,
                                        max_length=max_length, token_budget=token_budget,
                                        batch_size=batch_size, **(model_options or {}))


def encoder_parameters(component: Any) -> dict[str, Any]:
    """The loading parameters every component serialises, in one place."""
    return {
        "model": component.model,
        "device": component.device.to_dict(),
        "dtype": component.dtype,
        "max_length": component.max_length,
        "token_budget": component.token_budget,
        "batch_size": component.batch_size,
        "model_options": component.model_options,
        "api_base_url": component.api_base_url,
        "api_key": component.api_key.to_dict() if component.api_key is not None else None,
    }


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
    api_base_url: str | None
    api_key: Secret | None
    _encoder: DeweyEncoder | RemoteEncoder | None

    def _set_encoder_params(self, *, model: str, device: ComponentDevice | str | None,
                            dtype: str | None = None, max_length: int | None = None,
                            token_budget: int | None = None, batch_size: int | None = None,
                            model_options: dict[str, Any] | None = None, api_base_url: str | None = None,
                            api_key: Secret | None = None) -> None:
        """Stores the loading parameters (the device resolved); the model loads on :meth:`warm_up`.

        With ``api_base_url`` (a ``dewey serve`` server) the model runs there instead, and
        ``device``/``dtype``/``max_length``/``token_budget``/``batch_size``/``model_options``
        are the server's; ``api_key`` defaults to the ``DEWEY_API_KEY`` environment variable.
        """
        self.model = model
        self.device = resolve_device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.token_budget = token_budget
        self.batch_size = batch_size
        self.model_options = model_options
        self.api_base_url = api_base_url
        self.api_key = api_key
        self._encoder = None

    @classmethod
    def from_dict(cls: type[_Component], data: dict[str, Any]) -> _Component:
        """Deserializes the component from a dictionary."""
        deserialize_secrets_inplace(data.get("init_parameters", {}), keys=["api_key"])
        return default_from_dict(cls, data)

    def warm_up(self) -> None:
        """Loads the model once; later calls do nothing."""
        if self._encoder is None:
            self._encoder = self._load_encoder()

    def _load_encoder(self) -> DeweyEncoder | RemoteEncoder:
        """Loads the encoder from the stored parameters; a subclass may check what it got."""
        if self.api_base_url:
            key = (self.api_key or Secret.from_env_var("DEWEY_API_KEY", strict=False)).resolve_value()
            return RemoteEncoder(self.api_base_url, api_key=key)
        return load_encoder(self.model, self.device, self.dtype, self.max_length, self.token_budget,
                            self.model_options, self.batch_size)


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
