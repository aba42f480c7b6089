"""Encodings on the wire, shared by the server and :class:`dewey_core.client.RemoteEncoder`.

Vectors travel as JSON float lists or, as OpenAI's ``encoding_format="base64"`` does, as the
base64 of little-endian float32 bytes. Images travel as base64 or ``data:`` URLs.
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import numpy as np

from dewey_core.models.images import decode_image, describe, is_file

ENCODING_FORMATS = ("float", "base64")
_LE_FLOAT32 = np.dtype("<f4")


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """One vector as JSON floats or as base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype=_LE_FLOAT32).tobytes()).decode("ascii")
    return vector.tolist()


def decode_vector(value: list[float] | str) -> np.ndarray:
    """The inverse of :func:`encode_vector`: a float32 vector."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype=_LE_FLOAT32).astype(np.float32)
    return np.asarray(value, dtype=np.float32)


def image_data_url(source: Any, where: str) -> str:
    """A ``data:`` URL for a PIL image (sent as lossless PNG), a file path, image bytes or a
    data URL."""
    if isinstance(source, str) and source.startswith("data:"):
        decode_image(source, where)  # refuse a malformed one here, not on the server
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        if not is_file(source):
            raise FileNotFoundError(f"{where}: image {describe(source)} does not exist")
        with open(source, "rb") as f:
            data = f.read()
    elif hasattr(source, "save") and hasattr(source, "mode"):  # a PIL image
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        raise TypeError(f"{where} must be a PIL image, a file path or image bytes, "
                        f"got {type(source).__name__}")
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")
