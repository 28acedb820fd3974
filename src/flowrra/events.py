"""The in-process event bus that every task state change is published on.

Each subscriber gets its own bounded delivery queue drained by its own asyncio
task, so a slow or failing subscriber never blocks the emitter or the other
subscribers, and never grows memory past ``max_pending`` events (the oldest are
dropped first). ``emit`` therefore returns once the event is queued; delivery
follows on the next turns of the event loop, in order, once per subscriber.

Events from other processes (workers on other machines) arrive through *relays*
registered by apps that use a cross-process transport; the bus starts them when
its first subscriber arrives and stops them with its last one, so a web process
needs no start-up hook to see remote events.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], Awaitable[Any]]

DEFAULT_MAX_PENDING = 10_000


class Relay(Protocol):
    """A source of events from other processes, switched on while anyone listens."""

    async def set_demand(self, wanted: bool) -> None: ...


class _Pump:
    """Delivers queued events to one subscriber, sequentially, on one event loop."""

    __slots__ = ("dropped", "fn", "loop", "queue", "task")

    def __init__(self, fn: Subscriber, max_pending: int) -> None:
        self.fn = fn
        self.queue: deque[dict[str, Any]] = deque(maxlen=max_pending)
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0

    def put(self, event: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                logger.warning("event subscriber %r is too slow: %d events dropped",
                               self.fn, self.dropped)
        self.queue.append(event)
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        queue = self.queue
        while queue:
            event = queue.popleft()
            try:
                await self.fn(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event subscriber %r failed; it stays subscribed", self.fn)

    def cancel(self) -> None:
        self.queue.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()


class EventBus:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        #: The subscribed callables. Public in practice: user code reads it and
        #: removes from it, so it stays a plain list.
        self._subscribers: list[Subscriber] = []
        self._pumps: dict[Subscriber, _Pump] = {}
        # Weak: the bus is process-wide and must not keep apps (and their results) alive.
        self._relays: weakref.WeakSet[Relay] = weakref.WeakSet()
        self._relay_tasks: set[asyncio.Task[None]] = set()
        self.max_pending = max_pending

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
        """Queue ``event`` for every subscriber; never waits for a subscriber to run."""
        self.deliver(event)

    def deliver(self, event: dict[str, Any]) -> None:
        """Synchronous form of :meth:`emit` for code that cannot await."""
        subscribers = self._subscribers
        if not subscribers:
            return
        loop = asyncio.get_running_loop()
        pumps = self._pumps
        for fn in list(subscribers):
            pump = pumps.get(fn)
            if pump is None:
                pump = pumps[fn] = _Pump(fn, self.max_pending)
            pump.put(event, loop)
        if len(pumps) > len(subscribers):
            self._prune()

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
