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
    """The keyword options ``load`` accepts (``model_options`` / ``model_kwargs`` upstream)."""


def _is_transformers_dir(path: Path, config: dict[str, Any]) -> bool:
    return bool(config) or (path / "modules.json").is_file()


def _lazy(module: str) -> Callable[..., EncoderModel]:
    """Import a family's module only when a checkpoint of that family is loaded."""

    def load(path: Path, device: torch.device, dtype: torch.dtype, **options: Any) -> EncoderModel:
        import importlib

        return importlib.import_module(f"dewey_core.models.{module}").load(path, device, dtype,
                                                                          **options)

    return load


def _detector(module: str, name: str) -> Callable[[Path, dict[str, Any]], bool]:
    def detect(path: Path, config: dict[str, Any]) -> bool:
        import importlib

        return getattr(importlib.import_module(f"dewey_core.models.{module}"), name)(path, config)

    return detect


FAMILIES: list[Family] = [
    Family("dewey", _detector("dewey", "is_dewey"), _lazy("dewey"),
           ("pooling", "attention", "trust_remote_code")),
    Family("jasper", _detector("jasper", "is_jasper"), _lazy("jasper"), ("vector_dim", "trust_remote_code")),
    Family("stella", _detector("stella", "is_stella"), _lazy("stella"), ("vector_dim", "trust_remote_code")),
    Family("sentence-transformers", _is_transformers_dir,
           lambda path, device, dtype: SentenceTransformerModel(path, device, dtype)),
]


def detect_family(path: Path) -> Family:
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    for family in FAMILIES:
        if family.detect(path, config):
            return family
    raise ValueError(f"{path} holds neither a config.json nor a modules.json: not a model "
                     "directory this engine can load")


def load_model(path: Path, device: torch.device, dtype: torch.dtype,
               **options: Any) -> EncoderModel:
    family = detect_family(path)
    unknown = sorted(set(options) - set(family.options))
    if unknown:
        supported = ", ".join(family.options) or "none"
        raise ValueError(f"unknown model option(s) {', '.join(unknown)} for {family.name} models "
                         f"({path}); supported: {supported}")
    return family.load(path, device, dtype, **options)


__all__ = ["FAMILIES", "EncoderModel", "Family", "Prompts", "detect_family", "load_model"]
