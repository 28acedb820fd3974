"""Event transports carry events between processes; the relay feeds them to the local bus.

A process publishes its own events on the local :data:`~flowrra.events.event_bus`
*and* on its transport. Every process that listens relays what it receives into
its own bus, skipping events it published itself (each event carries the
``origin`` of the app that emitted it), so every subscriber sees each event
exactly once whether it was emitted locally or relayed.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from flowrra.events import EventBus

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class EventTransport(ABC):
    #: False for transports that cannot reach another process (nothing to relay).
    remote: bool = True

    @abstractmethod
    async def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` to every listening process (best effort, never raises on a full peer)."""

    @abstractmethod
    async def listen(self, handler: EventHandler) -> None:
        """Start delivering events from other processes to ``handler``; returns once listening."""

    @abstractmethod
    async def stop_listening(self) -> None: ...

    async def set_interest(self, *, control_only: bool) -> None:
        """Hint: this process needs only ``control.*`` events (no local subscriber wants the rest).

        A busy worker would otherwise receive, decode and discard every task update
        of the whole deployment, its own included. Transports that cannot filter
        ignore the hint and keep delivering everything, which stays correct.
        """

    async def close(self) -> None:
        await self.stop_listening()


class LocalTransport(EventTransport):
    """For in-process brokers: there is no other process to reach."""

    remote = False

    async def publish(self, event: dict[str, Any]) -> None:
        return None

    async def listen(self, handler: EventHandler) -> None:
        return None

    async def stop_listening(self) -> None:
        return None


class TransportRelay:
    """Listens on a transport while the bus has subscribers or the app is running."""

    #: Seconds a relay waits for its transport before giving up (and logging why).
    connect_timeout = 5.0

    def __init__(self, transport: EventTransport, bus: EventBus, origin: str,
                 on_control: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.transport = transport
        self.bus = bus
        self.origin = origin
        self.on_control = on_control
        self._bus_demand = False
        self._pinned = False
        self._listening = False
        self._control_only: bool | None = None
        self._lock = asyncio.Lock()

    async def set_demand(self, wanted: bool) -> None:
        self._bus_demand = wanted
        await self._sync()

    async def pin(self, pinned: bool) -> None:
        """The app holds the relay open while it runs (workers need control events)."""
        self._pinned = pinned
        await self._sync()

    @property
    def listening(self) -> bool:
        return self._listening

    async def _sync(self) -> None:
        """Listen or stop listening as demanded; a transport that fails is logged, not raised.

        Subscribers (web sockets) must never hang on an unreachable broker: they
        simply see local events until a later demand change succeeds.
        """
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._sync_locked()
        except Exception as exc:
            logger.warning("event relay could not %s its transport: %s",
                           "reach" if self._bus_demand or self._pinned else "release", exc)

    async def _sync_locked(self) -> None:
        async with self._lock:
            wanted = self._bus_demand or self._pinned
            control_only = not self._bus_demand
            if wanted and self._control_only != control_only:
                self._control_only = control_only
                await self.transport.set_interest(control_only=control_only)
            if wanted and not self._listening:
                await self.transport.listen(self._on_event)
                self._listening = True
            elif not wanted and self._listening:
                self._listening = False
                await self.transport.stop_listening()

    async def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("origin") == self.origin:
            return
        if self.on_control is not None and event.get("type", "").startswith("control."):
            self.on_control(event)
        self.bus.deliver(event)
