"""The coalescing helpers brokers and backends build on (no services needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from flowrra.brokers.batching import Batcher, ClaimCoalescer
from tests.conftest import wait_until


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False,
                 gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail = fail
        self.gate = gate  # when given, every flush waits for it (the test decides when)
        self.active = 0
        self.most_active = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            self.batches.append(list(items))
            await asyncio.sleep(self.delay)
            if self.gate is not None:
                await self.gate.wait()
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
    release = asyncio.Event()
    flush = Recorder(gate=release)
    batcher = Batcher(flush, max_inflight=1)
    first = asyncio.gather(*(batcher.submit(i) for i in range(3)))
    await wait_until(lambda: flush.active == 1, message="the first flush to start")
    second = asyncio.gather(*(batcher.submit(i) for i in range(3, 6)))
    await wait_until(lambda: batcher.pending == 3, message="the second batch to queue up")
    assert flush.batches == [[0, 1, 2]]  # still on the wire: nothing else flushed meanwhile
    release.set()
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
        self.blocked = False  # a claim is waiting for a put
        self.on_claim: Callable[[], None] | None = None  # runs as a claim returns items

    def put(self, *items: int) -> None:
        self.items.extend(items)
        self.changed.set()

    async def claim(self, n: int, wait: float) -> tuple[list[int], float | None]:
        if not self.items and wait > 0:
            self.changed.clear()
            self.blocked = True
            try:
                await asyncio.wait_for(self.changed.wait(), wait)
            except TimeoutError:
                pass
            finally:
                self.blocked = False
        self.claims.append(n)
        taken, self.items = self.items[:n], self.items[n:]
        if taken and self.on_claim is not None:
            self.on_claim()
        return taken, None

    async def release(self, items: list[int]) -> None:
        self.released.extend(items)
        self.items[:0] = items


async def test_one_fetch_serves_all_waiting_callers_and_buffers_nothing():
    queue = Queue()
    coalescer = ClaimCoalescer(queue.claim, queue.release, max_wait=0.5)
    waiters = [asyncio.create_task(coalescer.get(5)) for _ in range(10)]
    await wait_until(lambda: queue.blocked, message="the fetcher to block")
    assert len(coalescer._waiters) == 10 and queue.claims == [10]  # nothing there at first
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


@pytest.mark.parametrize("when", ["before the handover", "after the handover"])
async def test_item_claimed_for_a_cancelled_caller_is_released(when: str):
    queue = Queue()
    coalescer = ClaimCoalescer(queue.claim, queue.release, max_wait=0.5)
    lost = asyncio.create_task(coalescer.get(5))
    await wait_until(lambda: queue.blocked, message="the fetcher to block")
    if when == "before the handover":
        queue.on_claim = lost.cancel  # cancelled while the claim is on its way back
    else:
        # Scheduled now, so it runs after the fetcher hands 1 to the caller but before
        # the caller resumes: the caller is cancelled while holding the item.
        queue.on_claim = lambda: asyncio.get_running_loop().call_soon(lost.cancel)
    queue.put(1)
    outcome = (await asyncio.gather(lost, return_exceptions=True))[0]
    assert isinstance(outcome, asyncio.CancelledError)
    await wait_until(lambda: queue.released == [1], message="the item to go back")
    queue.on_claim = None
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
    await wait_until(lambda: woken, message="the first claim")  # found nothing: waits next
    queue.put(9)
    assert await waiter == 9
    assert woken[0] is None and woken[-1] == "token"  # 9 came by the wait-then-claim path
    await coalescer.close()
