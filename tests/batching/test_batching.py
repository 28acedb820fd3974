"""The coalescing helpers brokers and backends build on (no services needed)."""

from __future__ import annotations

import asyncio

import pytest

from flowrra.brokers.batching import Batcher, ClaimCoalescer


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail = fail
        self.active = 0
        self.most_active = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            self.batches.append(list(items))
            await asyncio.sleep(self.delay)
            if self.fail:
                raise RuntimeError("backend down")
            return [i * 10 for i in items]
        finally:
            self.active -= 1


async def test_concurrent_submissions_share_one_flush_and_get_their_own_result():
    flush = Recorder()
    batcher = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    assert flush.batches == [list(range(50))]


async def test_items_arriving_during_a_flush_form_the_next_batch_in_order():
    flush = Recorder(delay=0.02)
    batcher = Batcher(flush, max_inflight=1)
    first = asyncio.gather(*(batcher.submit(i) for i in range(3)))
    await asyncio.sleep(0.005)
    second = asyncio.gather(*(batcher.submit(i) for i in range(3, 6)))
    await asyncio.gather(first, second)
    assert flush.batches == [[0, 1, 2], [3, 4, 5]] and flush.most_active == 1


async def test_max_inflight_bounds_concurrent_flushes():
    flush = Recorder(delay=0.02)
    batcher = Batcher(flush, max_inflight=2, max_batch=1)
    await asyncio.gather(*(batcher.submit(i) for i in range(6)))
    assert flush.most_active == 2
    assert sorted(i for b in flush.batches for i in b) == list(range(6))


async def test_sequential_submissions_never_stall():
    """The window between a drainer's last look and its exit must not swallow an item."""
    flush = Recorder()
    batcher = Batcher(flush, max_inflight=1)
    for i in range(200):
        assert await asyncio.wait_for(batcher.submit(i), 2) == i * 10
        if i % 3 == 0:
            await asyncio.sleep(0)


async def test_failures_reach_every_caller_of_the_batch_and_the_batcher_recovers():
    flush = Recorder(fail=True)
    batcher = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    flush.fail = False
    assert await batcher.submit(7) == 70


async def test_fire_and_forget_items_are_flushed_by_close():
    flush = Recorder(delay=0.01)
    batcher = Batcher(flush)
    for i in range(5):
        batcher.submit_nowait(i)
    await batcher.close()
    assert sorted(i for b in flush.batches for i in b) == list(range(5))


def test_max_inflight_must_be_positive():
    with pytest.raises(ValueError, match="max_inflight"):
        Batcher(Recorder(), max_inflight=0)


# -- ClaimCoalescer ----------------------------------------------------------------------
class Queue:
    """A toy broker: claim(n, wait) takes up to n items, waiting for a put when empty."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.claims: list[int] = []
        self.released: list[int] = []
        self.changed = asyncio.Event()

    def put(self, *items: int) -> None:
        self.items.extend(items)
        self.changed.set()

    async def claim(self, n: int, wait: float) -> tuple[list[int], float | None]:
        if not self.items and wait > 0:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), wait)
            except TimeoutError:
                pass
        self.claims.append(n)
        taken, self.items = self.items[:n], self.items[n:]
        return taken, None

    async def release(self, items: list[int]) -> None:
        self.released.extend(items)
        self.items[:0] = items


async def test_one_fetch_serves_all_waiting_callers_and_buffers_nothing():
    queue = Queue()
    coalescer = ClaimCoalescer(queue.claim, queue.release, max_wait=0.5)
    waiters = [asyncio.create_task(coalescer.get(5)) for _ in range(10)]
    await asyncio.sleep(0.01)
    queue.put(*range(25))
    got = await asyncio.gather(*waiters)
    assert sorted(got) == list(range(10))
    assert max(queue.claims) == 10  # one claim for all ten callers
    assert queue.items == list(range(10, 25))  # nothing claimed beyond the callers
    await coalescer.close()


async def test_timeout_returns_none():
    queue = Queue()
    coalescer = ClaimCoalescer(queue.claim, queue.release, max_wait=0.05)
    assert await coalescer.get(0.1) is None
    await coalescer.close()


async def test_item_claimed_for_a_cancelled_caller_is_handed_on_or_released():
    queue = Queue()
    coalescer = ClaimCoalescer(queue.claim, queue.release, max_wait=0.5)
    lost = asyncio.create_task(coalescer.get(5))
    await asyncio.sleep(0.01)
    queue.put(1)
    await asyncio.sleep(0)  # the fetcher wakes and hands 1 to the waiter ...
    await asyncio.sleep(0)
    lost.cancel()  # ... which is cancelled before it could return it
    outcome = (await asyncio.gather(lost, return_exceptions=True))[0]
    if outcome == 1:
        return  # it was delivered before the cancellation: nothing to hand back
    assert await coalescer.get(2) == 1
    await coalescer.close()


async def test_separate_wait_form_is_supported():
    queue = Queue()
    woken: list[object] = []

    async def wait(seconds: float) -> str:
        await asyncio.sleep(min(seconds, 0.01))
        return "token"

    async def claim(n: int, token: object) -> tuple[list[int], float | None]:
        woken.append(token)
        return await queue.claim(n, 0)

    coalescer = ClaimCoalescer(claim, wait, queue.release, max_wait=0.05)
    waiter = asyncio.create_task(coalescer.get(2))
    await asyncio.sleep(0.02)
    queue.put(9)
    assert await waiter == 9
    assert woken[0] is None and "token" in woken
    await coalescer.close()
