"""One WebSocket client's view of the event bus, shared by every web adapter.

The stream subscribes through the public bus API when opened and unsubscribes
when closed. Between the bus and the socket sits a bounded buffer that keeps at
most one pending frame per task (the latest state wins) plus a bounded number of
other events, so a client that cannot keep up costs bounded memory and never
slows the bus: it simply skips intermediate states.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from flowrra.events import EventBus, event_bus

DEFAULT_MAX_PENDING = 1000


class EventStream:
    def __init__(self, bus: EventBus | None = None, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending <= 0:
            raise ValueError(f"max_pending must be greater than zero, got {max_pending}")
        self.bus = bus if bus is not None else event_bus
        self.max_pending = max_pending
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._ready = asyncio.Event()
        self._open = False
        self._seq = 0
        self.dropped = 0

    async def open(self) -> None:
        """Subscribe; returns once cross-process relays (if any) are listening."""
        if not self._open:
            self._open = True
            await self.bus.async_subscribe(self._on_event)

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.bus.unsubscribe(self._on_event)
            self._ready.set()

    async def __aenter__(self) -> EventStream:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _on_event(self, event: dict[str, Any]) -> None:
        if not self._open or str(event.get("type", "")).startswith("control."):
            return
        task = event.get("task")
        if isinstance(task, dict) and task.get("task_id"):
            key = f"task:{task['task_id']}"
        else:
            self._seq += 1
            key = f"event:{self._seq}"
        if key in self._pending:
            self._pending.move_to_end(key)
        self._pending[key] = {k: v for k, v in event.items() if k != "origin"}
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1
        self._ready.set()

    async def next_frame(self) -> str | None:
        """The next JSON text frame, or None once the stream is closed."""
        while self._open:
            if self._pending:
                _, event = self._pending.popitem(last=False)
                return json.dumps(event, default=str)
            self._ready.clear()
            await self._ready.wait()
        return None

    async def frames(self) -> AsyncIterator[str]:
        while (frame := await self.next_frame()) is not None:
            yield frame
