"""Image inputs: open PIL images, paths and bytes with clear errors; SigLIP preprocessing.

Preprocessing follows the checkpoint's ``preprocessor_config.json`` (SigLIP: RGB, resize to
``size`` with ``resample``, rescale, normalise) using PIL only; Pillow is the ``images`` extra.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ImageSource = Any
"""A ``PIL.Image.Image``, a file path (``str`` or ``os.PathLike``) or encoded image ``bytes``."""


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow ships with the images extra
        raise ImportError("image inputs need Pillow: pip install 'dewey-core[images]'") from exc
    return Image


def describe(source: ImageSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{len(source)} bytes"
    if isinstance(source, (str, os.PathLike)):
        return f"file {os.fspath(source)!r}"
    return type(source).__name__


def open_image(source: ImageSource, where: str):
    """A decoded RGB ``PIL.Image`` from ``source``; ``where`` names it in errors."""
    Image = _pil()
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)):
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise FileNotFoundError(f"{where}: image file {os.fspath(source)!r} does not exist")
        stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) \
            else os.fspath(source)
        try:
            image = Image.open(stream)
            image.load()  # decode now, so a truncated file fails here and not later
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{where} ({describe(source)}) is not a readable image: {exc}") from exc
    else:
        raise TypeError(f"{where} must be a PIL image, a file path or image bytes, "
                        f"got {type(source).__name__}")
    return image.convert("RGB")


@dataclass(frozen=True)
class ImagePreprocessor:
    """Resize, rescale and normalise as the checkpoint's ``preprocessor_config.json`` says."""

    height: int
    width: int
    resample: int = 3
    rescale_factor: float = 1 / 255
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ImagePreprocessor:
        size = cfg.get("size") or {}
        if "height" not in size or "width" not in size:
            raise ValueError(f"preprocessor_config.json: size must give height and width, got {size}")
        return cls(int(size["height"]), int(size["width"]), int(cfg.get("resample", 3)),
                   float(cfg.get("rescale_factor", 1 / 255)),
                   tuple(cfg.get("image_mean", (0.5,) * 3)), tuple(cfg.get("image_std", (0.5,) * 3)),
                   bool(cfg.get("do_resize", True)), bool(cfg.get("do_rescale", True)),
                   bool(cfg.get("do_normalize", True)))

    def __call__(self, image) -> torch.Tensor:
        """``(3, height, width)`` float32 pixels for one RGB PIL image."""
        if self.do_resize:
            image = image.resize((self.width, self.height), resample=self.resample)
        pixels = np.asarray(image, dtype=np.float32)
        if self.do_rescale:
            pixels = pixels * self.rescale_factor
        if self.do_normalize:
            pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
