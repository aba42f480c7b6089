"""The cross-request batcher: merged calls, results routed back, isolation, backpressure, drain."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from dewey_core.serving.batcher import MERGE_BUDGETS, Batcher, Overloaded, ShuttingDown, TooLarge
from dewey_core.serving.work import EmbedWork, LateChunkWork

TEXTS = [f"Request number {i} asks about {topic}." for i, topic in
         enumerate(["saffron", "rust", "tides", "glaciers", "opera", "chess", "bees", "lichen"] * 3)]


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.queue: list[tuple[int, int]] = []

    def queue_changed(self, requests: int, tokens: int) -> None:
        self.queue.append((requests, tokens))

    def batch_done(self, requests: int, tokens: int, seconds: float) -> None:
        self.batches.append(requests)


def _doc(texts: list[str], dim: int | None = None) -> EmbedWork:
    return EmbedWork(texts, "document", None, dim)


def test_concurrent_requests_share_model_calls_and_get_their_own_vectors(minilm):
    recorder = Recorder()
    requests = [TEXTS[i:i + 1 + i % 3] for i in range(20)]

    async def main():
        batcher = Batcher(minilm, max_wait=0.05, observer=recorder)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(_doc(r), tokens=12 * len(r)) for r in requests))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert len(recorder.batches) < len(requests)  # merged
    assert sum(recorder.batches) == len(requests)
    for texts, got in zip(requests, results, strict=True):
        want = minilm.encode_documents(texts)
        assert got.shape == want.shape
        assert (got * want).sum(1).min() >= 0.9999
    assert recorder.queue[-1] == (0, 0)  # every token accounted for


def test_a_default_group_holds_several_token_budgets(minilm):
    """Merged calls span MERGE_BUDGETS engine budgets (the engine splits them into its own
    forward batches); a group never passes that."""
    recorder = Recorder()
    half = minilm.token_budget // 2
    n = 2 * MERGE_BUDGETS + 1  # one group full to the token, one request left over

    async def main():
        batcher = Batcher(minilm, max_wait=0.05, observer=recorder)
        await batcher.start()
        await asyncio.gather(*(batcher.submit(_doc(TEXTS[i:i + 1]), half) for i in range(n)))
        await batcher.close()

    asyncio.run(main())
    assert MERGE_BUDGETS > 1
    assert recorder.batches == [n - 1, 1]


def test_only_requests_with_the_same_settings_are_merged(minilm):
    recorder = Recorder()

    async def main():
        batcher = Batcher(minilm, max_wait=0.05, observer=recorder)
        await batcher.start()
        out = await asyncio.gather(batcher.submit(_doc(TEXTS[:2]), 20),
                                   batcher.submit(_doc(TEXTS[2:4], 64), 20),
                                   batcher.submit(_doc(TEXTS[4:6]), 20))
        await batcher.close()
        return out

    full, small, full2 = asyncio.run(main())
    assert recorder.batches == [2, 1]
    assert small.shape == (2, 64) and full.shape == full2.shape == (2, 384)
    assert np.allclose(small, minilm.encode_documents(TEXTS[2:4], dim=64), atol=1e-5)


def test_a_failing_request_fails_alone(minilm):
    good = LateChunkWork(["Saffron is a spice. It is red."], [[(0, 19)]], 256, 0, "boundaries",
                         None, None, None)
    # Spans are checked at admission; this one skipped that, so the engine refuses it in the merged call.
    bad = LateChunkWork(["short"], [[(0, 99)]], 256, 0, "boundaries", None, None, None)

    async def main():
        batcher = Batcher(minilm, max_wait=0.05)
        await batcher.start()
        out = await asyncio.gather(batcher.submit(good, 10), batcher.submit(bad, 10),
                                   batcher.submit(good, 10), return_exceptions=True)
        await batcher.close()
        return out

    first, error, second = asyncio.run(main())
    assert isinstance(error, ValueError) and "out of range" in str(error)
    assert [c.text for c in first[0].chunks] == [c.text for c in second[0].chunks] == ["Saffron is a spice."]


def test_backpressure_bounds_queued_tokens(minilm):
    async def main():
        batcher = Batcher(minilm, max_queued_tokens=1000)
        await batcher.start()
        with pytest.raises(TooLarge, match="more than the server queues at once"):
            await batcher.submit(_doc(TEXTS[:1]), 1001)
        first = asyncio.ensure_future(batcher.submit(_doc(TEXTS[:1]), 800))
        await asyncio.sleep(0)  # queued, not finished
        assert batcher.queued_tokens == 800
        with pytest.raises(Overloaded, match="800 tokens queued, limit 1000"):
            await batcher.submit(_doc(TEXTS[1:2]), 300)
        small = await batcher.submit(_doc(TEXTS[1:2]), 200)  # still fits
        await first
        assert batcher.queued_tokens == 0
        await batcher.close()
        return small

    assert asyncio.run(main()).shape == (1, 384)


def test_close_finishes_queued_work_and_refuses_new(minilm):
    async def main():
        batcher = Batcher(minilm, max_batch_tokens=16, max_wait=0)
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(_doc([t]), 12)) for t in TEXTS[:6]]
        await asyncio.sleep(0)
        await batcher.close()  # returns only when everything queued is answered
        assert all(p.done() for p in pending)
        with pytest.raises(ShuttingDown):
            await batcher.submit(_doc(TEXTS[:1]), 12)
        return [p.result() for p in pending]

    results = asyncio.run(main())
    assert [r.shape for r in results] == [(1, 384)] * 6


def test_a_caller_that_leaves_frees_its_tokens(minilm):
    async def main():
        batcher = Batcher(minilm, max_wait=0.2)
        await batcher.start()
        gone = asyncio.ensure_future(batcher.submit(_doc(TEXTS[:1]), 50))
        await asyncio.sleep(0)
        gone.cancel()
        kept = await batcher.submit(_doc(TEXTS[1:2]), 50)
        assert batcher.queued_tokens == 0
        await batcher.close()
        return kept

    assert asyncio.run(main()).shape == (1, 384)
