"""The event-transport contract: events published by one process reach listeners in others.

Each ``new()`` transport stands for another process on the same channel. The
in-process ``LocalTransport`` reaches no other process (``remote = False``), so
the cross-process properties are skipped for it.
"""

from __future__ import annotations

import pytest

from flowrra.transports import EventTransport
from tests.conftest import wait_until


class Inbox:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.events.append(event)

    def ids(self) -> list[int]:
        return [e.get("n") for e in self.events]


def needs_remote(transport: EventTransport) -> None:
    if not transport.remote:
        pytest.skip("in-process transport: there is no other process to reach")


async def test_local_transport_accepts_everything_quietly(make_transports):
    async with make_transports() as new:
        transport = new()
        await transport.listen(Inbox())
        await transport.publish({"type": "x"})
        await transport.stop_listening()
        await transport.close()


async def test_published_event_reaches_listener_in_another_instance(make_transports):
    async with make_transports() as new:
        sender, receiver, other = new(), new(), new()
        needs_remote(sender)
        inbox, inbox2 = Inbox(), Inbox()
        await receiver.listen(inbox)
        await other.listen(inbox2)
        event = {"type": "task.update", "n": 1, "task": {"task_id": "abc", "status": "running",
                                                         "result": {"nested": [1, None]}}}
        await sender.publish(event)
        await wait_until(lambda: inbox.events and inbox2.events, timeout=10, message="delivery")
        assert inbox.events == [event] and inbox2.events == [event]


async def test_events_from_one_publisher_arrive_in_order(make_transports):
    async with make_transports() as new:
        sender, receiver = new(), new()
        needs_remote(sender)
        inbox = Inbox()
        await receiver.listen(inbox)
        for n in range(200):
            await sender.publish({"type": "task.update", "n": n})
        await wait_until(lambda: len(inbox.events) >= 200, timeout=10, message="200 events")
        assert inbox.ids() == list(range(200))


async def test_stop_listening_stops_delivery(make_transports):
    async with make_transports() as new:
        sender, stopped, witness = new(), new(), new()
        needs_remote(sender)
        stopped_inbox, witness_inbox = Inbox(), Inbox()
        await stopped.listen(stopped_inbox)
        await sender.publish({"n": 1})
        await wait_until(lambda: stopped_inbox.events, timeout=10, message="first event")
        await stopped.stop_listening()
        await witness.listen(witness_inbox)
        await sender.publish({"n": 2})
        await wait_until(lambda: witness_inbox.events, timeout=10, message="witness delivery")
        await sender.publish({"n": 3})
        await wait_until(lambda: len(witness_inbox.events) == 2, timeout=10, message="third event")
        assert stopped_inbox.ids() == [1]
        # listening again works
        await stopped.listen(stopped_inbox)
        await sender.publish({"n": 4})
        await wait_until(lambda: stopped_inbox.ids() == [1, 4], timeout=10, message="relisten")


async def test_events_without_listeners_are_dropped(make_transports):
    async with make_transports() as new:
        early, sender, receiver = new(), new(), new()
        needs_remote(sender)
        for n in range(5):
            await early.publish({"n": n})  # nobody listens: must neither fail nor pile up
        await early.close()  # publishing may be asynchronous: make sure these went out
        inbox = Inbox()
        await receiver.listen(inbox)
        await sender.publish({"n": 99})
        await wait_until(lambda: inbox.events, timeout=10, message="delivery")
        await sender.publish({"n": 100})
        await wait_until(lambda: len(inbox.events) == 2, timeout=10, message="second delivery")
        assert inbox.ids() == [99, 100]


async def test_listen_is_idempotent_and_close_is_safe(make_transports):
    async with make_transports() as new:
        sender, receiver = new(), new()
        needs_remote(sender)
        inbox = Inbox()
        await receiver.listen(inbox)
        await receiver.listen(inbox)
        await sender.publish({"n": 7})
        await sender.publish({"n": 8})
        await wait_until(lambda: len(inbox.events) >= 2, timeout=10, message="delivery")
        assert inbox.ids() == [7, 8]  # once each, even though listen was called twice
        await receiver.close()
        await receiver.close()
        await sender.close()


async def test_control_only_interest_filters_task_updates(make_transports):
    async with make_transports() as new:
        sender, receiver = new(), new()
        needs_remote(sender)
        if type(receiver).set_interest is EventTransport.set_interest:
            pytest.skip("this transport ignores the control-only hint (allowed: it is a hint)")
        inbox = Inbox()
        await receiver.set_interest(control_only=True)
        await receiver.listen(inbox)
        await sender.publish({"type": "task.update", "n": 1})
        await sender.publish({"type": "control.cancel", "n": 2})
        await wait_until(lambda: inbox.events, timeout=10, message="control event")
        await receiver.set_interest(control_only=False)  # while listening
        await sender.publish({"type": "task.update", "n": 3})
        await wait_until(lambda: len(inbox.events) >= 2, timeout=10, message="task update")
        assert inbox.ids() == [2, 3]
