"""Model families. Each one is a module with a detector and a loader, registered here.

Detection reads only the checkpoint's JSON files; the first family whose detector accepts a
directory loads it. Generic sentence-transformers/transformers comes last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dewey_core.models.base import EncoderModel, Prompts
from dewey_core.models.sentence_transformers import SentenceTransformerModel, read_json


@dataclass(frozen=True)
class Family:
    name: str
    detect: Callable[[Path, dict[str, Any]], bool]
    """``detect(path, config_json) -> bool``."""
    load: Callable[..., EncoderModel]
    """``load(path, device, dtype, **options) -> EncoderModel``."""
    options: tuple[str, ...] = ()
    """Options that change what is loaded (``load`` takes them)."""
    view_options: tuple[str, ...] = ()
    """Options applied to a loaded model without reloading it (``EncoderModel.with_options``)."""
    default_attention: Callable[[Path, torch.device, torch.dtype], str] | None = None
    """The attention kernel used when none is asked for, so that ``attention`` left out and the
    same kernel given explicitly share one loaded model."""

    @property
    def all_options(self) -> tuple[str, ...]:
        return (*self.options, *self.view_options)

    def load_key(self, path: Path, device: torch.device, dtype: torch.dtype,
                 options: dict[str, Any]) -> tuple:
        """What identifies the loaded weights among ``options`` (view options excluded)."""
        resolved: dict[str, Any] = {"trust_remote_code": False}
        if self.default_attention is not None and not options.get("trust_remote_code"):
            resolved["attention"] = self.default_attention(path, device, dtype)
        resolved.update({k: v for k, v in options.items() if k in self.options and v is not None})
        return tuple(sorted((k, repr(v)) for k, v in resolved.items()))


def _is_transformers_dir(path: Path, config: dict[str, Any]) -> bool:
    return bool(config) or (path / "modules.json").is_file()


def _lazy(module: str) -> Callable[..., EncoderModel]:
    """Import a family's module only when a checkpoint of that family is loaded."""

    def load(path: Path, device: torch.device, dtype: torch.dtype, **options: Any) -> EncoderModel:
        import importlib

        return importlib.import_module(f"dewey_core.models.{module}").load(path, device, dtype,
                                                                          **options)

    return load


def _function(module: str, name: str) -> Callable[..., Any]:
    """A family module's function, imported on first call."""

    def call(*args: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(f"dewey_core.models.{module}"), name)(*args)

    return call


FAMILIES: list[Family] = [
    Family("dewey", _function("dewey", "is_dewey"), _lazy("dewey"),
           ("attention", "trust_remote_code"), ("pooling",), _function("dewey", "default_attention")),
    Family("jasper", _function("jasper", "is_jasper"), _lazy("jasper"),
           ("attention", "trust_remote_code"), ("vector_dim",), _function("jasper", "default_attention")),
    Family("stella", _function("stella", "is_stella"), _lazy("stella"),
           ("attention", "trust_remote_code"), ("vector_dim",), _function("stella", "default_attention")),
    Family("sentence-transformers", _is_transformers_dir, SentenceTransformerModel, ("attention",),
           default_attention=_function("sentence_transformers", "default_attention")),
]


def detect_family(path: Path) -> Family:
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    for family in FAMILIES:
        if family.detect(path, config):
            return family
    raise ValueError(f"{path} holds neither a config.json nor a modules.json: not a model "
                     "directory this engine can load")


def check_options(family: Family, path: Path, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(family.all_options))
    if unknown:
        supported = ", ".join(family.all_options) or "none"
        raise ValueError(f"unknown model option(s) {', '.join(unknown)} for {family.name} models "
                         f"({path}); supported: {supported}")


def load_model(path: Path, device: torch.device, dtype: torch.dtype,
               **options: Any) -> EncoderModel:
    """Load a model with every option applied (no sharing; see :mod:`dewey_core.loading`)."""
    family = detect_family(path)
    check_options(family, path, options)
    model = family.load(path, device, dtype,
                        **{k: v for k, v in options.items() if k in family.options})
    return model.with_options(**{k: v for k, v in options.items() if k in family.view_options})


__all__ = ["FAMILIES", "EncoderModel", "Family", "Prompts", "check_options", "detect_family",
           "load_model"]
