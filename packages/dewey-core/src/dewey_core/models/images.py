"""Image inputs: open PIL images, paths and bytes with clear errors; SigLIP preprocessing.

Preprocessing follows the checkpoint's ``preprocessor_config.json`` (SigLIP: RGB, resize to
``size`` with ``resample``, rescale, normalise) using PIL only; Pillow is the ``images`` extra.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ImageSource = Any
"""A ``PIL.Image.Image``, a file path (``str`` or ``os.PathLike``), encoded image ``bytes`` or a
``data:image/...;base64,`` URL."""


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
        path = os.fspath(source)
        return f"file {path if len(path) <= 200 else path[:200] + '...'!r}"
    return type(source).__name__


def decode_image(value: str, where: str) -> bytes:
    """The bytes of an image sent as a ``data:image/...;base64,`` URL or as bare base64."""
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a base64 string or a data URL, got {type(value).__name__}")
    payload = value
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ValueError(f"{where}: a data URL must look like 'data:image/png;base64,...'")
    elif value.startswith(("http://", "https://", "file:")):
        raise ValueError(f"{where}: image URLs are not fetched; send the image as base64 or a data URL")
    payload = "".join(payload.split())  # MIME base64 (base64.encodebytes, the base64 tool) wraps lines
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{where} is not valid base64: {exc}") from None
    if not data:
        raise ValueError(f"{where} is empty")
    return data


def is_file(path: str | os.PathLike) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long for the file system (e.g. base64 text)
        return False


def open_image(source: ImageSource, where: str):
    """A decoded RGB ``PIL.Image`` from ``source``; ``where`` names it in errors."""
    Image = _pil()
    if isinstance(source, str) and source.startswith("data:"):
        source = decode_image(source, where)
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)):
        if isinstance(source, (str, os.PathLike)) and not is_file(source):
            raise FileNotFoundError(f"{where}: image {describe(source)} does not exist")
        stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) \
            else os.fspath(source)
        try:
            image = Image.open(stream)
            image.load()  # decode now, so a truncated file fails here and not later
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{where} ({describe(source)}) is not a readable image: {exc}") from exc
    else:
        raise TypeError(f"{where} must be a PIL image, a file path, image bytes or a data URL, "
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
