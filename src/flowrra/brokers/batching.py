"""Coalescing helpers that let network brokers serve many coroutines with few round trips.

:class:`Batcher` turns concurrent calls (100 runners each storing a result or
acknowledging a task) into one batch call per event-loop turn, so the per-task
cost is a future, not a network round trip.

:class:`ClaimCoalescer` does the same for ``dequeue``: every waiting caller
registers a future, and a single fetcher claims up to as many tasks as there are
waiting callers, blocks on the broker's wake-up signal when there is nothing to
claim, and hands each task to exactly one caller. Nothing is buffered beyond the
callers that are waiting: a task claimed for a caller that timed out or was
cancelled meanwhile goes to another waiting caller or straight back to the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _backoff(attempt: int) -> float:
    return min(2.0, 0.05 * 2 ** min(attempt, 6))


class Batcher(Generic[T, R]):
    """Collects items submitted concurrently and flushes them together.

    ``flush(items)`` returns one result per item (or ``None`` for all). Up to
    ``max_inflight`` flushes run at once; items arriving meanwhile form the next
    batch, so batches grow exactly when the backend is the bottleneck and stay at
    one item when idle. With ``max_inflight=1`` batches are flushed strictly in
    order (events rely on that); more lets a caller skip waiting behind a batch
    that is already on the wire.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R] | None]], *,
                 max_batch: int = 500, max_inflight: int = 1, name: str = "batch") -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, got {max_inflight}")
        self._flush = flush
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.name = name
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R] | None] = []
        self._drainers: set[asyncio.Task[None]] = set()
        self._unstarted: asyncio.Task[None] | None = None  # will take whatever is pending
        self._loop: asyncio.AbstractEventLoop | None = None

    def _this_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; state left by a finished loop (asyncio.run per call) is dropped."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._items, self._futures = [], []
            self._drainers, self._unstarted = set(), None
            self._loop = loop
        return loop

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = self._this_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        self._ensure_running()
        return await future

    def submit_nowait(self, item: T) -> None:
        """Fire and forget: the item is flushed with the next batch; failures are logged."""
        self._this_loop()
        self._items.append(item)
        self._futures.append(None)
        self._ensure_running()

    @property
    def pending(self) -> int:
        return len(self._items)

    def _ensure_running(self) -> None:
        if self._unstarted is None and len(self._drainers) < self.max_inflight:
            task = asyncio.get_running_loop().create_task(self._drain(), name=self.name)
            self._unstarted = task
            self._drainers.add(task)
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        """Done callback; also covers a drainer cancelled before it ever ran."""
        self._drainers.discard(task)
        if self._unstarted is task:
            self._unstarted = None

    async def _drain(self) -> None:
        me = asyncio.current_task()
        if self._unstarted is me:
            self._unstarted = None
        try:
            await self._drain_items()
        finally:
            # leave synchronously: an item submitted from now on must start a new drainer
            self._drainers.discard(me)  # type: ignore[arg-type]

    async def _drain_items(self) -> None:
        while self._items:
            size = self.max_batch
            items, futures = self._items[:size], self._futures[:size]
            del self._items[:size], self._futures[:size]
            if self._items:
                self._ensure_running()  # more than one batch waiting: use the spare flush
            try:
                results = await self._flush(items)
            except asyncio.CancelledError:
                for future in futures:
                    if future is not None and not future.done():
                        future.cancel()
                raise
            except Exception as exc:
                if all(future is None for future in futures):
                    logger.warning("%s: dropped %d item(s): %s", self.name, len(items), exc)
                for future in futures:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                continue
            for index, future in enumerate(futures):
                if future is not None and not future.done():
                    future.set_result(None if results is None else results[index])

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed (or has failed)."""
        if self._loop is not asyncio.get_running_loop():
            return
        while self._drainers:
            await asyncio.wait(list(self._drainers))

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is pending (up to ``timeout``), then stop."""
        drainers = list(self._drainers)
        if not drainers:
            return
        _done, pending = await asyncio.wait(drainers, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


#: ``claim(n, wait)`` -> (up to ``n`` claimed items, seconds until something is due or None).
#: With ``wait > 0`` and nothing claimable, it may first block up to ``wait`` seconds for the
#: broker's wake-up signal (Redis: BLPOP and the claim script in one round trip).
ClaimFn = Callable[[int, float], Awaitable[tuple[list[T], float | None]]]
ReleaseFn = Callable[[list[T]], Awaitable[None]]
#: Separate-wait form: ``wait(seconds)`` blocks until woken (returns a token or None), then
#: ``claim(n, token)`` claims. ``ClaimCoalescer(claim, wait, release)`` composes the two.
WaitFn = Callable[[float], Awaitable[Any]]


class ClaimCoalescer(Generic[T]):
    """One fetcher per broker instance serving every concurrent ``get`` caller."""

    def __init__(self, claim: Callable[[int, Any], Awaitable[tuple[list[T], float | None]]],
                 wait_or_release: WaitFn | ReleaseFn[T], release: ReleaseFn[T] | None = None, *,
                 max_wait: float = 1.0, name: str = "claim") -> None:
        if release is None:  # claim(n, wait) blocks by itself
            self._claim: ClaimFn[T] = claim
            self._release = wait_or_release  # type: ignore[assignment]
        else:
            self._claim = _waiting_then_claiming(claim, wait_or_release)  # type: ignore[arg-type]
            self._release = release
        self.max_wait = max_wait
        self.name = name
        self._waiters: deque[asyncio.Future[T | None]] = deque()
        self._fetcher: asyncio.Task[None] | None = None
        self._returns: list[T] = []
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self, timeout: float) -> T | None:
        """Claim one item, waiting up to ``timeout`` seconds; None if nothing came."""
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a finished loop's waiters and fetcher are gone with it
            self._waiters, self._fetcher, self._returns = deque(), None, []
            self._background = set()
            self._loop = loop
        future: asyncio.Future[T | None] = loop.create_future()
        self._waiters.append(future)
        timer = loop.call_later(max(0.0, timeout), _expire, future)
        if self._fetcher is None:
            self._fetcher = loop.create_task(self._fetch(), name=self.name)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is not None:
                self._hand_back(future.result())  # claimed for us just as we were cancelled
            raise
        finally:
            timer.cancel()

    def _live(self) -> int:
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()
        return sum(1 for w in waiters if not w.done())

    def _give(self, item: T) -> bool:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def _hand_back(self, item: T) -> None:
        if self._give(item):
            return
        self._returns.append(item)
        task = asyncio.get_running_loop().create_task(self._release_returns())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_returns(self) -> None:
        items, self._returns = self._returns, []
        if items:
            try:
                await self._release(items)
            except Exception:
                logger.exception("%s: could not hand back %d task(s); their leases will expire "
                                 "and they will be delivered again", self.name, len(items))

    async def _fetch(self) -> None:
        wait = 0.0  # first claim without blocking: there may be work already
        failures = 0
        try:
            while True:
                wanted = 0 if self._closed else self._live()
                if wanted == 0:
                    return
                try:
                    items, due_in = await self._claim(wanted, wait)
                except Exception as exc:
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        logger.warning("%s: cannot claim tasks (%s); retrying", self.name, exc)
                    await asyncio.sleep(_backoff(failures))
                    wait = 0.0
                    continue
                failures = 0
                leftovers = [item for item in items if not self._give(item)]
                if leftovers:
                    self._returns.extend(leftovers)
                    await self._release_returns()
                if len(items) >= wanted:
                    wait = 0.0
                else:
                    wait = self.max_wait if due_in is None else min(self.max_wait, due_in)
                    wait = max(wait, 0.001)
        finally:
            self._fetcher = None

    async def close(self) -> None:
        """Answer every waiting caller with None and stop the fetcher."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        fetcher = self._fetcher
        if fetcher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(fetcher), self.max_wait + 2.0)
            except (TimeoutError, Exception):
                fetcher.cancel()
                await asyncio.gather(fetcher, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def reopen(self) -> None:
        self._closed = False


def _waiting_then_claiming(claim: Callable[[int, Any], Awaitable[tuple[list[T], float | None]]],
                           wait: WaitFn) -> ClaimFn[T]:
    async def claim_after_wait(n: int, seconds: float) -> tuple[list[T], float | None]:
        token = await wait(seconds) if seconds > 0 else None
        return await claim(n, token)

    return claim_after_wait


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
