""":class:`RemoteEncoder`: the :class:`~dewey_core.DeweyEncoder` methods, computed by ``dewey serve``.

Adapters and applications swap the encoder object and keep their code: ``encode_queries``,
``encode_documents``, ``late_chunk`` (the same :class:`~dewey_core.LateChunkedDocument` and
:class:`~dewey_core.Chunk` types), ``encode_images``, ``count_tokens``, ``dimension``. Inputs
are checked here with the engine's own checks, so bad input fails before any request with the
same error as in process. Large calls are sent as several requests within the server's limits;
a busy server (503) is retried after its ``Retry-After``. Needs ``httpx`` (the ``client`` or
``serve`` extra).

Example (with ``dewey serve --model sentence-transformers/all-MiniLM-L6-v2`` running):
    >>> from dewey_core.client import RemoteEncoder
    >>> enc = RemoteEncoder("http://127.0.0.1:8080")          # doctest: +SKIP
    >>> enc.encode_documents(["hello world"]).shape           # doctest: +SKIP
    (1, 384)
    >>> doc = enc.late_chunk(["A town. Its saffron."], chunk_size=4)[0]   # doctest: +SKIP
    >>> [c.text for c in doc.chunks]                          # doctest: +SKIP
    ['A town. ', 'Its saffron.']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dewey_core.chunking import check_chunking
from dewey_core.inputs import check_dim, check_int, check_spans, check_texts, resolve_prompt
from dewey_core.serving.wire import decode_vector, image_data_url
from dewey_core.types import Chunk, LateChunkedDocument
from dewey_core.windowing import WindowPolicy

#: Characters after which a call shows a progress bar unless told (about the engine's 200K tokens).
AUTO_PROGRESS_MIN_CHARS = 800_000


class RemoteEncoderError(RuntimeError):
    """The server refused or failed a request; ``status`` and ``code`` say why."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"dewey server answered {status}: {message}")
        self.status, self.code, self.message = status, code, message


class RemoteInputError(RemoteEncoderError, ValueError):
    """The server refused an input as invalid (422), e.g. a prompt too long for the window: a
    ``ValueError``, as the engine raises in process."""


class RemoteEncoder:
    """A client of ``dewey serve`` with the public methods of :class:`~dewey_core.DeweyEncoder`.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8080`` (a trailing ``/v1`` is accepted).
        api_key: sent as ``Authorization: Bearer``; the server's ``--api-key``.
        model: the served model's name; default the one the server serves.
        timeout: seconds per request.
        max_retries: retries of a request the server refuses as overloaded (503).
        request_inputs: at most this many texts, documents or images per request.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout: float = 600.0, max_retries: int = 8, request_inputs: int = 256) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx comes with every framework
            raise ImportError("RemoteEncoder needs httpx: pip install 'dewey-core[client]'") from exc
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL such as http://127.0.0.1:8080, "
                             f"got {base_url!r}")
        if request_inputs < 1:
            raise ValueError(f"request_inputs must be positive, got {request_inputs}")
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key, self.model_id = api_key, model
        self.max_retries, self.request_inputs = max_retries, request_inputs
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._card: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RemoteEncoder({self.base_url!r}, model={self.model_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the served model
    @property
    def card(self) -> dict[str, Any]:
        """The server's description of its model (``GET /v1/models``), fetched once."""
        if self._card is None:
            models = self._request("GET", "/v1/models")["data"]
            if self.model_id is None:
                self._card = models[0]
            else:
                found = [m for m in models if m["id"] == self.model_id]
                if not found:
                    raise RemoteEncoderError(404, f"model {self.model_id!r} is not served at "
                                                  f"{self.base_url}; it serves {[m['id'] for m in models]}",
                                             "model_not_found")
                self._card = found[0]
            self.model_id = self._card["id"]
        return self._card

    @property
    def dimension(self) -> int:
        """Size of the default output vector."""
        return int(self.card["dimension"])

    @property
    def max_length(self) -> int:
        """Tokens per model window on the server."""
        return int(self.card["max_length"])

    @property
    def supports_images(self) -> bool:
        return bool(self.card["supports_images"])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens per text (no special or prompt tokens), counted by the server."""
        texts = check_texts(texts)
        out: list[int] = []
        for piece in self._pieces(texts, [len(t) for t in texts]):
            out += self._post_piece("/v1/count_tokens", piece, lambda p: {"input": p})
        return out

    # ------------------------------------------------------------------ encoding
    @property
    def prompts(self) -> dict[str, str]:
        """The served model's named prompts (``prompt_name`` values), query and document included."""
        return dict(self.card["prompts"])

    def encode_queries(self, texts: Sequence[str], dim: int | None = None, *, prompt: str | None = None,
                       prompt_name: str | None = None, show_progress: bool | None = None,
                       normalize: bool = True) -> np.ndarray:
        """Embed queries with the model's query prompt: float32 ``(n, d)``, as in process."""
        return self._embed(texts, "query", dim, prompt, prompt_name, show_progress, normalize)

    def encode_documents(self, texts: Sequence[str], dim: int | None = None, *, prompt: str | None = None,
                         prompt_name: str | None = None, show_progress: bool | None = None,
                         normalize: bool = True) -> np.ndarray:
        """Embed documents with the model's document prompt: float32 ``(n, d)``, as in process."""
        return self._embed(texts, "document", dim, prompt, prompt_name, show_progress, normalize)

    def _embed(self, texts, input_type: str, dim, prompt, prompt_name, show_progress,
               normalize: bool) -> np.ndarray:
        texts = check_texts(texts)
        dim = self._check_dim(dim)
        # No prompt: the server picks the model's own for input_type.
        prompt = resolve_prompt(prompt, prompt_name, self.prompts, None)
        if not texts:
            return np.zeros((0, dim or self.dimension), dtype=np.float32)
        body = {"input_type": input_type, "dimensions": dim, "encoding_format": "base64",
                "normalize": normalize, "truncate": True}  # truncation as DeweyEncoder does
        if prompt is not None:
            body["prompt"] = prompt
        rows = []
        for piece in self._progress(self._pieces(texts, [len(t) for t in texts]), texts, show_progress,
                                    f"Encoding {input_type}s"):
            data = self._post_piece("/v1/embeddings", piece, lambda p: {**body, "input": p})
            rows += [decode_vector(d["embedding"]) for d in data]
        return np.stack(rows)

    def late_chunk(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]] | None = None,
                   chunk_size: int = 256, chunk_overlap: int = 0, dim: int | None = None, *,
                   chunking: str = "boundaries", allow_overlap: bool = False,
                   context_tokens: int | None = None, window_overlap: int | None = None,
                   show_progress: bool | None = None) -> list[LateChunkedDocument]:
        """:meth:`DeweyEncoder.late_chunk` on the server: the same documents, chunks and vectors."""
        texts = check_texts(texts)
        dim = self._check_dim(dim)
        check_chunking(chunk_size, chunk_overlap, chunking)
        policy = WindowPolicy(context_tokens, window_overlap)
        # Plain ints on the wire (numpy integers pass the checks but are not JSON).
        chunk_size = check_int(chunk_size, "chunk_size")
        chunk_overlap = check_int(chunk_overlap, "chunk_overlap")
        context_tokens = check_int(context_tokens, "context_tokens", optional=True)
        window_overlap = check_int(window_overlap, "window_overlap", optional=True)
        if spans is not None:
            spans = check_spans(spans, texts, allow_overlap=allow_overlap)
        # Settings that fit no window fail for every input, as in process.
        policy.resolve(int(self.card["window_capacity"]))
        if not texts:
            return []
        settings = {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap, "chunking": chunking,
                    "allow_overlap": allow_overlap, "context_tokens": context_tokens,
                    "window_overlap": window_overlap, "dimensions": dim, "encoding_format": "base64"}

        def body(part: list[int]) -> dict[str, Any]:
            return {**settings, "documents": [texts[i] for i in part],
                    **({} if spans is None else {"spans": [spans[i] for i in part]})}

        out: list[LateChunkedDocument] = []
        indices = list(range(len(texts)))
        for piece in self._progress(self._pieces(indices, [len(t) for t in texts]), texts, show_progress,
                                    "Late chunking"):
            for i, doc in zip(piece, self._post_piece("/v1/late_chunk", piece, body), strict=True):
                text = texts[i]
                chunks = [Chunk(text[c["start"]:c["end"]], c["start"], c["end"],
                                decode_vector(c["embedding"])) for c in doc["chunks"]]
                out.append(LateChunkedDocument(text, decode_vector(doc["embedding"]), chunks,
                                               doc["num_tokens"], doc["num_windows"]))
        return out

    def encode_images(self, images: Sequence[Any], dim: int | None = None, *, prompt: str | None = None,
                      show_progress: bool | None = None) -> np.ndarray:
        """Embed images or mixed text + image inputs (as :meth:`DeweyEncoder.encode_images`:
        each item a PIL image, a file path, image bytes, or a list of such and ``str`` text parts)."""
        if isinstance(images, (str, bytes)) or not isinstance(images, (list, tuple)):
            raise TypeError(f"images must be a list, got {type(images).__name__} (wrap a single image "
                            "in a list)")
        dim = self._check_dim(dim)
        if not images:
            return np.zeros((0, dim or self.dimension), dtype=np.float32)
        inputs = [_image_input(item, i) for i, item in enumerate(images)]
        body: dict[str, Any] = {"dimensions": dim, "encoding_format": "base64"}
        if prompt is not None:
            body["prompt"] = prompt
        rows = []
        sizes = [len(str(x)) for x in inputs]
        for piece in self._progress(self._pieces(inputs, sizes), inputs, show_progress, "Encoding images"):
            data = self._post_piece("/v1/images/embeddings", piece, lambda p: {**body, "input": p})
            rows += [decode_vector(d["embedding"]) for d in data]
        return np.stack(rows)

    # ------------------------------------------------------------------ transport
    def _check_dim(self, dim: int | None) -> int | None:
        return check_dim(dim, (int(self.card["max_dimensions"]),))

    def _pieces(self, items: list, sizes: list[int]) -> Iterator[list]:
        """Consecutive runs of ``items`` within the server's per-request input and size limits."""
        limits = self.card["limits"]
        max_items = min(self.request_inputs, int(limits["max_inputs"]))
        # A token covers at least one character, so this many characters fit the queue's bound.
        max_chars = min(int(limits["max_request_chars"]), int(limits["max_queued_tokens"]) // 2)
        piece: list = []
        chars = 0
        for item, size in zip(items, sizes, strict=True):
            if piece and (len(piece) == max_items or chars + size > max_chars):
                yield piece
                piece, chars = [], 0
            piece.append(item)
            chars += size
        if piece:
            yield piece

    @staticmethod
    def _progress(pieces: Iterator[list], items: Sequence, show: bool | None, desc: str) -> Iterator[list]:
        if show is None:
            show = sum(len(x) if isinstance(x, str) else 1 for x in items) >= AUTO_PROGRESS_MIN_CHARS
        if not show:
            yield from pieces
            return
        with tqdm(total=len(items), desc=desc, unit="input") as bar:
            for piece in pieces:
                yield piece
                bar.update(len(piece))

    def _post_piece(self, path: str, piece: list, body: Callable[[list], dict[str, Any]]) -> list:
        """The ``data`` for ``piece``; a piece the server finds too large (413: it counts more
        tokens than :meth:`_pieces` could know, e.g. byte-level BPE on emoji) goes in halves."""
        try:
            return self._post(path, body(piece))["data"]
        except RemoteEncoderError as exc:
            if exc.status != 413 or len(piece) < 2:
                raise
        half = len(piece) // 2
        return self._post_piece(path, piece[:half], body) + self._post_piece(path, piece[half:], body)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", path, {"model": self.card["id"], **body})

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            response = self._http.request(method, path, json=body)
            if response.status_code == 503 and attempt < self.max_retries:
                time.sleep(_retry_after(response, attempt))
                continue
            if response.status_code >= 400:
                try:
                    error = response.json()["error"]
                    message, code = error["message"], error.get("code")
                except (ValueError, KeyError, TypeError):
                    message, code = response.text[:500], None
                error_class = RemoteInputError if response.status_code == 422 else RemoteEncoderError
                raise error_class(response.status_code, message, code)
            return response.json()
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response, attempt: int) -> float:
    try:
        return min(float(response.headers.get("retry-after", "")), 30.0)
    except ValueError:
        return min(0.5 * 2**attempt, 30.0)


def _image_input(item: Any, i: int) -> str | list[dict[str, Any]]:
    if not isinstance(item, (list, tuple)):
        return image_data_url(item, f"images[{i}]")
    if not item:
        raise ValueError(f"images[{i}] is an empty list of parts")
    return [{"type": "text", "text": part} if isinstance(part, str)
            else {"type": "image_url", "image_url": {"url": image_data_url(part, f"images[{i}][{j}]")}}
            for j, part in enumerate(item)]
