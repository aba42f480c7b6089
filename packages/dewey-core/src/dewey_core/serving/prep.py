"""Work done before a request is queued, off the event loop: token counts and image decoding.

It runs on a thread of its own with its own copy of the model's tokenizer (a fast tokenizer is
not safe to share with the model thread) and the engine's own tokenisation
(:class:`~dewey_core.tokenization.TextTokenizer`), so counts are the ones the engine will see.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from dewey_core.encoder import DeweyEncoder
from dewey_core.models.images import decode_image, open_image
from dewey_core.tokenization import TextTokenizer
from dewey_core.windowing import capacity

_T = TypeVar("_T")


@dataclass(frozen=True)
class TokenCount:
    """One text: its content tokens, the prompt's tokens, and the content room of a window."""

    content: int
    prompt: int
    room: int


class Preparer:
    def __init__(self, encoder: DeweyEncoder) -> None:
        self.encoder = encoder
        self.tokenizer = TextTokenizer(copy.deepcopy(encoder.model.tokenizer.hf))
        self.num_special = self.tokenizer.num_special
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dewey-prep")

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ on the prep thread
    def count(self, texts: list[str], prompt: str) -> list[TokenCount]:
        out = []
        for tok in self.tokenizer.tokenize(texts, prompt, offsets=False):
            room = capacity(self.encoder.max_length, self.num_special, len(tok.prompt_ids))
            out.append(TokenCount(len(tok), len(tok.prompt_ids), room))
        return out

    def sequence_tokens(self, counts: list[TokenCount], *, windowed: bool) -> int:
        """Tokens the model will run for these texts (truncated, or windowed when ``windowed``)."""
        total = 0
        for c in counts:
            windows = max(1, math.ceil(c.content / max(c.room, 1))) if windowed else 1
            content = c.content if windowed else min(c.content, c.room)
            total += content + windows * (c.prompt + self.num_special)
        return total

    def images(self, inputs: list[Any]) -> tuple[list[Any], int]:
        """Decode each input (an image string, or parts) into what ``encode_images`` takes;
        also the tokens it will cost. Errors name the input and part."""
        per_image = getattr(self.encoder.model, "num_img_tokens", 0) + 2
        items, tokens = [], 0
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                items.append(_image(item, f"input[{i}]"))
                tokens += per_image + self.num_special
                continue
            parts: list[Any] = []
            for j, part in enumerate(item):
                if part.type == "text":
                    parts.append(part.text)
                    tokens += len(self.tokenizer.tokenize([part.text], offsets=False)[0])
                else:
                    parts.append(_image(part.image_url.url, f"input[{i}][{j}]"))
                    tokens += per_image
            if not parts:
                raise ValueError(f"input[{i}] is an empty list of parts")
            items.append(parts)
            tokens += self.num_special
        return items, tokens


def _image(value: str, where: str):
    return open_image(decode_image(value, where), where)
