"""Reference chunk vectors computed without the engine's span, batching or pooling code.

Tests compare the engine's late-chunked vectors with these: the Hugging Face tokenizer's own
offsets, one plain forward pass of the backbone on ``[specials][prompt][text][specials]``, and
a token belonging to a span when its first non-space character (a whitespace-only token: its
first character) lies inside it.
"""

from __future__ import annotations

import numpy as np
import torch


def plain_token_states(enc, text: str) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Token states of ``text``'s tokens in one window and their offsets into ``text``."""
    hf, prompt = enc.tokenizer, enc.model.prompts.document
    encoded = hf(prompt + text, add_special_tokens=False, return_offsets_mapping=True)
    prefix, suffix = enc.model.tokenizer.prefix_ids, enc.model.tokenizer.suffix_ids
    ids = [*prefix, *encoded["input_ids"], *suffix]
    # A Qwen2 made bidirectional takes its (absent) full-attention mask per layer type.
    kwargs = {"attention_mask": {"full_attention": None}} \
        if enc.model.attention.forced_bidirectional else {}
    with torch.inference_mode():
        states = enc.model.backbone(input_ids=torch.tensor([ids]), **kwargs).last_hidden_state[0]
    offsets = [(s - len(prompt), e - len(prompt)) for s, e in encoded["offset_mapping"]]
    return states[len(prefix):len(prefix) + len(offsets)], offsets


def reference_chunks(enc, text: str, spans: list[tuple[int, int]]) -> np.ndarray:
    """The normalised chunk vectors of ``spans`` in ``text`` (head applied), one row each."""
    states, offsets = plain_token_states(enc, text)
    anchors = []
    for s, e in offsets:
        chars = [p for p in range(max(s, 0), e) if not text[p].isspace()] or [max(s, 0)]
        anchors.append(chars[0] if e > 0 else -1)
    pooled = []
    for span in spans:
        inside = [i for i, a in enumerate(anchors) if span[0] <= a < span[1]]
        if not inside:
            raise ValueError(f"no token of {text!r} starts in span {span}")
        pooled.append(states[inside].float().mean(0))
    with torch.inference_mode():
        vectors = enc.model.project(torch.stack(pooled), None)
    return torch.nn.functional.normalize(vectors, dim=-1).numpy()
