"""Encodings on the wire, shared by the server and :class:`dewey_core.client.RemoteEncoder`.

Vectors travel as JSON float lists or, as OpenAI's ``encoding_format="base64"`` does, as the
base64 of little-endian float32 bytes. Images travel as base64 or ``data:`` URLs.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from typing import Any

import numpy as np

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


def image_data_url(source: Any, where: str) -> str:
    """A ``data:`` URL for a PIL image (sent as lossless PNG), a file path or image bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{where}: image file {os.fspath(source)!r} does not exist")
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
