"""The in-process event bus that every task state change is published on.

Each subscriber gets its own bounded delivery queue drained by its own asyncio
task, so a slow or failing subscriber never blocks the emitter or the other
subscribers, and never grows memory past ``max_pending`` events (the oldest are
dropped first). ``await emit(event)`` returns once every subscriber that keeps
up has been called with the event (code written for flowrra 0.1 emits and then
checks), waiting at most ``emit_timeout`` for the others; the worker's own state
changes use :meth:`EventBus.deliver`, which queues and returns at once.

Events from other processes (workers on other machines) arrive through *relays*
registered by apps that use a cross-process transport; the bus starts them when
its first subscriber arrives and stops them with its last one, so a web process
needs no start-up hook to see remote events.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], Awaitable[Any]]

DEFAULT_MAX_PENDING = 10_000
DEFAULT_EMIT_TIMEOUT = 1.0


class Relay(Protocol):
    """A source of events from other processes, switched on while anyone listens."""

    async def set_demand(self, wanted: bool) -> None: ...


class _Pump:
    """Delivers queued events to one subscriber, sequentially, on one event loop.

    ``queued`` counts events put, ``done`` those called (or dropped for lack of
    room); :meth:`EventBus.emit` waits until ``done`` reaches its event's number.
    A subscriber that misses that deadline is ``lagging``: later emits stop
    waiting for it until its queue is empty again, so a stuck subscriber costs an
    emitter one deadline per stall, not one per event.
    """

    __slots__ = ("done", "dropped", "fn", "lagging", "loop", "queue", "queued", "task", "waiters")

    def __init__(self, fn: Subscriber, max_pending: int) -> None:
        self.fn = fn
        self.queue: deque[dict[str, Any]] = deque(maxlen=max_pending)
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self.queued = 0
        self.done = 0
        self.lagging = False
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []

    def put(self, event: dict[str, Any], loop: asyncio.AbstractEventLoop) -> int:
        """Queue ``event``; return its number for :meth:`waiter`."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            self.done += 1  # the oldest falls out: it will never be called
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                logger.warning("event subscriber %r is too slow: %d events dropped",
                               self.fn, self.dropped)
        self.queue.append(event)
        self.queued += 1
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self._drain())
        return self.queued

    def waiter(self, number: int) -> asyncio.Future[None] | None:
        """A future resolved once event ``number`` is handled; None if it already is."""
        if self.done >= number or self.lagging or asyncio.current_task() is self.task:
            return None  # a subscriber that emits from inside its own call must not wait on itself
        assert self.loop is not None
        future: asyncio.Future[None] = self.loop.create_future()
        self.waiters.append((number, future))
        return future

    async def _drain(self) -> None:
        queue = self.queue
        while queue:
            event = queue.popleft()
            try:
                result = self.fn(event)
                if type(result) is CoroutineType or (
                        result is not None and inspect.isawaitable(result)):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event subscriber %r failed; it stays subscribed", self.fn)
            self.done += 1
            if self.waiters:
                self._release(self.done)
        self.lagging = False

    def _release(self, done: int) -> None:
        keep = []
        for number, future in self.waiters:
            if number <= done:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((number, future))
        self.waiters = keep

    def cancel(self) -> None:
        self.queue.clear()
        self._release(self.queued)
        if self.task is not None and not self.task.done():
            self.task.cancel()


class EventBus:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING,
                 emit_timeout: float = DEFAULT_EMIT_TIMEOUT) -> None:
        #: The subscribed callables. Public in practice: user code reads it and
        #: removes from it, so it stays a plain list.
        self._subscribers: list[Subscriber] = []
        self._pumps: dict[Subscriber, _Pump] = {}
        # Weak: the bus is process-wide and must not keep apps (and their results) alive.
        self._relays: weakref.WeakSet[Relay] = weakref.WeakSet()
        self._relay_tasks: set[asyncio.Task[None]] = set()
        self.max_pending = max_pending
        #: The longest ``emit`` waits for subscribers that have not handled its event.
        self.emit_timeout = emit_timeout

    # -- subscription -------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> None:
        """Register ``fn``; it will be awaited with every event emitted from now on."""
        if not callable(fn):
            raise TypeError(f"subscriber must be an async callable, got {fn!r}")
        if fn not in self._subscribers:
            self._subscribers.append(fn)
        if len(self._subscribers) == 1:
            self._signal_relays(True)

    async def async_subscribe(self, fn: Subscriber) -> None:
        """Subscribe and wait until cross-process relays are listening."""
        self.subscribe(fn)
        await self._set_demand(True)

    async def unsubscribe(self, fn: Subscriber) -> None:
        if fn in self._subscribers:
            self._subscribers.remove(fn)
        pump = self._pumps.pop(fn, None)
        if pump is not None:
            pump.cancel()
        if not self._subscribers:
            await self._set_demand(False)

    async def _set_demand(self, wanted: bool) -> None:
        """Switch every relay concurrently; one unreachable relay never blocks the others."""
        relays = list(self._relays)
        if relays:
            await asyncio.gather(*(relay.set_demand(wanted) for relay in relays),
                                 return_exceptions=True)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- delivery -----------------------------------------------------------------
    async def emit(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` to every subscriber and wait until each has handled it.

        The wait is bounded by :attr:`emit_timeout` (1 s by default) in total; a
        subscriber still busy then goes on in the background and is not waited for
        again until it has caught up. A failing subscriber counts as handled.
        """
        if not self._subscribers:
            return
        waiting: dict[asyncio.Future[None], _Pump] = {}
        for pump, number in self._queue(event, []) or ():
            future = pump.waiter(number)
            if future is not None:
                waiting[future] = pump
        if not waiting:
            return
        _done, late = await asyncio.wait(waiting, timeout=self.emit_timeout)
        for future in late:
            waiting[future].lagging = True
            future.cancel()

    def deliver(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every subscriber without waiting (the worker's hot path)."""
        if self._subscribers:
            self._queue(event, None)

    def _queue(self, event: dict[str, Any],
               numbers: list[tuple[_Pump, int]] | None) -> list[tuple[_Pump, int]] | None:
        """Put ``event`` in every subscriber's pump; note each pump's event number in ``numbers``."""
        loop = asyncio.get_running_loop()
        pumps = self._pumps
        for fn in list(self._subscribers):
            pump = pumps.get(fn)
            if pump is None:
                pump = pumps[fn] = _Pump(fn, self.max_pending)
            number = pump.put(event, loop)
            if numbers is not None:
                numbers.append((pump, number))
        if len(pumps) > len(self._subscribers):
            self._prune()
        return numbers

    def _prune(self) -> None:
        """Drop pumps of callables that user code removed from ``_subscribers`` directly."""
        for fn in [fn for fn in self._pumps if fn not in self._subscribers]:
            self._pumps.pop(fn).cancel()

    # -- cross-process relays ----------------------------------------------------------
    def add_relay(self, relay: Relay) -> None:
        if relay not in self._relays:
            self._relays.add(relay)
            if self._subscribers:
                self._signal_relays(True, [relay])

    def remove_relay(self, relay: Relay) -> None:
        if relay in self._relays:
            self._relays.remove(relay)

    def _signal_relays(self, wanted: bool, relays: list[Relay] | None = None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: async_subscribe or app.start() will switch relays on
        for relay in relays if relays is not None else list(self._relays):
            task = loop.create_task(relay.set_demand(wanted))
            self._relay_tasks.add(task)
            task.add_done_callback(self._relay_tasks.discard)


#: The process-wide bus that apps publish on and UIs subscribe to.
event_bus = EventBus()


def task_event(task: dict[str, Any]) -> dict[str, Any]:
    return {"type": "task.update", "task": task}
