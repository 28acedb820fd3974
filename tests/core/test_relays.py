"""Cross-process relays never block subscribers, and stopped apps stop relaying."""

from __future__ import annotations

import asyncio
from typing import Any

from flowrra import Flowrra
from flowrra.events import EventBus
from flowrra.transports.base import EventTransport, TransportRelay
from tests.conftest import wait_until


class HangingTransport(EventTransport):
    """A transport whose broker never answers (an unreachable Redis)."""

    def __init__(self) -> None:
        self.listen_calls = 0

    async def publish(self, event: dict[str, Any]) -> None:
        return None

    async def listen(self, handler: Any) -> None:
        self.listen_calls += 1
        await asyncio.Event().wait()

    async def stop_listening(self) -> None:
        return None


async def test_unreachable_relay_does_not_block_subscribers() -> None:
    bus = EventBus()
    transport = HangingTransport()
    relay = TransportRelay(transport, bus, origin="x")
    relay.connect_timeout = 0.2
    bus.add_relay(relay)
    seen: list[dict[str, Any]] = []

    async def subscriber(event: dict[str, Any]) -> None:
        seen.append(event)

    async with asyncio.timeout(5):  # would hang forever without the bounded wait
        await bus.async_subscribe(subscriber)
    assert transport.listen_calls >= 1
    assert not relay.listening
    await bus.emit({"type": "task.update", "task": {"task_id": "a"}})
    await wait_until(lambda: bool(seen), timeout=5, message="the local event")
    async with asyncio.timeout(5):
        await bus.unsubscribe(subscriber)


async def test_stopped_app_is_no_longer_a_relay() -> None:
    from flowrra.events import event_bus

    app = Flowrra()
    assert app._relay in event_bus._relays
    await app.start()
    await app.stop()
    assert app._relay not in event_bus._relays
    await app.start()  # starting again relays again
    assert app._relay in event_bus._relays
    await app.stop()
