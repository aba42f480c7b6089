"""Model settings shared by the embedding, the node parser and the retriever.

The model is loaded lazily on first use, and dewey_core shares one loaded model per
(model, device, dtype, options) in the process, so a :class:`DeweyEmbedding` and a
:class:`DeweyNodeParser` on the same model hold its weights once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from dewey_core import DeweyEncoder
from dewey_core.client import RemoteEncoder

DEFAULT_MODEL = "infgrad/dewey_en_beta"
DEFAULT_JASPER_MODEL = "NovaSearch/jasper_en_vision_language_v1"

_T = TypeVar("_T")
_locks_guard = threading.Lock()
_model_locks: dict[int, threading.Lock] = {}


class EncoderSettings(BaseModel):
    """Which dewey_core model to run, and where. Mixed into each public class."""

    model_name: str = Field(default=DEFAULT_MODEL,
                            description="Hugging Face id or local directory of the model.")
    device: str | None = Field(default=None, description="'cuda', 'cpu', ...; default CUDA if present.")
    dtype: str | None = Field(default=None,
                              description="'bfloat16', 'float32', ...; default bf16 on CUDA, fp32 on CPU.")
    max_length: int | None = Field(default=None, gt=0,
                                   description="Tokens per model window (default: the model's limit).")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="Model family options, e.g. {'pooling': 'mean'}.")
    base_url: str | None = Field(
        default=None, description="A `dewey serve` server (e.g. 'http://gpu-box:8080'): the model runs "
                                  "there and device/dtype/max_length/model_options are the server's; "
                                  "model_name names the served model only when given.")
    # Never serialised (to_dict / to_json): a restored object reads $DEWEY_API_KEY again.
    api_key: str | None = Field(default_factory=lambda: os.environ.get("DEWEY_API_KEY") or None,
                                description="The server's --api-key (default: $DEWEY_API_KEY).",
                                repr=False, exclude=True)

    # Unknown keywords (say LangChain's ``model=``) are errors, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    _encoder: DeweyEncoder | RemoteEncoder | None = PrivateAttr(default=None)

    @field_validator("model_name", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """LlamaIndex's serialisation; on a server, a ``model_name`` never given is left out, so
        a restored object takes whatever the server serves, as the original did."""
        data = super().to_dict(**kwargs)
        if self.base_url and "model_name" not in self.model_fields_set:
            data.pop("model_name", None)
        return data

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """A copy with ``update`` applied; it finds its model again on first use (an update
        may name another model, device or window)."""
        copied = super().model_copy(update=update, deep=deep)
        copied._encoder = None
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None):
        memo = {} if memo is None else memo
        if self._encoder is not None:  # never deep-copy the loaded weights
            memo[id(self._encoder)] = None
        return super().__deepcopy__(memo)

    @property
    def encoder(self) -> DeweyEncoder | RemoteEncoder:
        """The dewey_core encoder, loaded (or taken from the process-wide cache) on first use;
        with ``base_url``, the client of that server."""
        if self._encoder is None and self.base_url:
            served = self.model_name if "model_name" in self.model_fields_set else None
            self._encoder = RemoteEncoder(self.base_url, api_key=self.api_key, model=served)
        if self._encoder is None:
            self._encoder = DeweyEncoder.from_pretrained(
                self.model_name, device=self.device, dtype=self.dtype, max_length=self.max_length,
                **self.model_options)
        return self._encoder

    def __getstate__(self) -> dict[str, Any]:
        # Pickled copies (e.g. for IngestionPipeline workers) reload the model, never ship it.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_encoder": None}
        return state

    def _run_model(self, work: Callable[[DeweyEncoder], _T]) -> _T:
        """Run ``work`` with the encoder, one call per loaded model at a time.

        Async callers run model work in threads; serialising calls on the same weights keeps
        concurrent batches from oversubscribing the device and the CPU threads.
        """
        encoder = self.encoder
        if isinstance(encoder, RemoteEncoder):  # the server batches concurrent calls itself
            return work(encoder)
        with _locks_guard:
            lock = _model_locks.setdefault(id(encoder.model), threading.Lock())
        with lock:
            return work(encoder)
