"""The event bus (SPEC section 5) and the task.update events the app publishes on it."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import weakref

import pytest

from flowrra import Flowrra
from flowrra.events import EventBus, event_bus
from tests.conftest import wait_until
from tests.core.conftest import Collector

TASK_KEYS = {"task_id", "status", "task_name", "result", "error", "submitted_at", "started_at",
             "finished_at", "retries", "args", "kwargs"}


def test_subscribe_is_synchronous_and_the_rest_async() -> None:
    assert not inspect.iscoroutinefunction(EventBus.subscribe)
    for name in ("unsubscribe", "async_subscribe", "emit"):
        assert inspect.iscoroutinefunction(getattr(EventBus, name)), name


async def test_subscribe_emit_unsubscribe() -> None:
    bus = EventBus()
    got = Collector()
    assert bus.subscribe(got) is None
    await bus.emit({"type": "x", "n": 1})
    await wait_until(lambda: len(got.events) == 1, message="delivery")
    assert got.events == [{"type": "x", "n": 1}]
    await bus.unsubscribe(got)
    assert bus._subscribers == []
    await bus.emit({"type": "x", "n": 2})
    other = Collector()
    await bus.async_subscribe(other)
    await bus.emit({"type": "x", "n": 3})
    await wait_until(lambda: len(other.events) == 1, message="delivery to the other")
    assert got.events == [{"type": "x", "n": 1}]
    await bus.unsubscribe(other)
    await bus.unsubscribe(other)  # unsubscribing twice is harmless


def test_subscribe_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="async callable"):
        EventBus().subscribe("not a function")  # type: ignore[arg-type]


async def test_subscribers_is_a_plain_list_user_code_can_edit() -> None:
    bus = EventBus()
    kept, removed = Collector(), Collector()
    bus.subscribe(kept)
    bus.subscribe(removed)
    assert type(bus._subscribers) is list and bus._subscribers == [kept, removed]
    await bus.emit({"n": 1})
    await wait_until(lambda: len(removed.events) == 1 and len(kept.events) == 1, message="first")
    bus._subscribers.remove(removed)
    await bus.emit({"n": 2})
    await wait_until(lambda: len(kept.events) == 2, message="second to the kept subscriber")
    assert removed.events == [{"n": 1}]
    assert type(event_bus._subscribers) is list


async def test_each_event_is_delivered_once_per_subscriber() -> None:
    bus = EventBus()
    got = Collector()
    bus.subscribe(got)
    bus.subscribe(got)
    await bus.async_subscribe(got)
    assert bus._subscribers == [got]
    for n in range(50):
        await bus.emit({"n": n})
    await wait_until(lambda: len(got.events) >= 50, message="all events")
    assert [e["n"] for e in got.events] == list(range(50))


async def test_failing_subscriber_does_not_break_others() -> None:
    bus = EventBus()
    got = Collector()
    calls = 0

    async def broken(event: dict) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(got)
    for n in range(3):
        await bus.emit({"n": n})
    await wait_until(lambda: len(got.events) == 3 and calls == 3, message="deliveries")
    assert broken in bus._subscribers  # it stays subscribed


async def test_slow_subscriber_blocks_nobody_and_drops_oldest() -> None:
    bus = EventBus(max_pending=3)
    release = asyncio.Event()
    slow_got: list[int] = []
    fast = Collector()

    async def slow(event: dict) -> None:
        slow_got.append(event["n"])
        await release.wait()

    bus.subscribe(slow)
    bus.subscribe(fast)
    await bus.emit({"n": 0})
    await wait_until(lambda: slow_got == [0], message="slow subscriber busy with the first")
    for n in range(1, 10):
        await asyncio.wait_for(bus.emit({"n": n}), timeout=1)  # emit never waits for it
    await wait_until(lambda: len(fast.events) == 10, message="fast subscriber got everything")
    assert [e["n"] for e in fast.events] == list(range(10))
    assert slow_got == [0]
    release.set()
    await wait_until(lambda: len(slow_got) == 4, message="slow subscriber catches up")
    assert slow_got == [0, 7, 8, 9]  # at most max_pending queued; the oldest were dropped
    assert bus.max_pending == 3


async def test_emit_returns_after_every_subscriber_has_the_event() -> None:
    """0.1.8 code emits and then checks what its subscriber received, with no wait."""
    bus = EventBus()
    first, second = Collector(), Collector()
    bus.subscribe(first)
    bus.subscribe(second)
    for n in range(5):
        await bus.emit({"n": n})
        assert [e["n"] for e in first.events] == list(range(n + 1))
        assert [e["n"] for e in second.events] == list(range(n + 1))


async def test_emit_waits_for_a_stuck_subscriber_once_per_stall() -> None:
    bus = EventBus(emit_timeout=0.2)
    release = asyncio.Event()
    fast = Collector()

    async def stuck(event: dict) -> None:
        await release.wait()

    bus.subscribe(stuck)
    bus.subscribe(fast)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(bus.emit({"n": 0}), timeout=5)
    assert loop.time() - started >= 0.2  # it did wait for the stuck one, up to the bound
    assert [e["n"] for e in fast.events] == [0]
    for n in range(1, 50):  # lagging now: not waited for again
        await bus.emit({"n": n})
        assert fast.events[-1]["n"] == n
    assert loop.time() - started < 5
    release.set()
    await wait_until(lambda: not bus._pumps[stuck].queue and not bus._pumps[stuck].lagging,
                     message="stuck subscriber catches up")
    await bus.emit({"n": 99})  # caught up: waited for again, and it has the event
    assert bus._pumps[stuck].done == bus._pumps[stuck].queued


async def test_subscriber_that_emits_does_not_wait_on_itself() -> None:
    bus = EventBus(emit_timeout=30)
    seen: list[int] = []

    async def echo(event: dict) -> None:
        seen.append(event["n"])
        if event["n"] == 0:
            await bus.emit({"n": 1})

    bus.subscribe(echo)
    await asyncio.wait_for(bus.emit({"n": 0}), timeout=5)
    await wait_until(lambda: seen == [0, 1], message="nested event")


async def test_plain_function_subscriber_is_called() -> None:
    bus = EventBus()
    seen: list[dict] = []
    bus.subscribe(seen.append)
    await bus.emit({"n": 1})
    assert seen == [{"n": 1}]


async def test_emit_with_no_subscribers_is_a_no_op() -> None:
    await EventBus().emit({"type": "nothing"})


# -- task.update events from the app -------------------------------------------------------
async def _final(events: Collector, task_id: str, status: str) -> list[dict]:
    """The updates of a task once ``status`` arrived; each keeps what was submitted."""
    await wait_until(lambda: status in events.statuses(task_id), message=f"{status} event")
    updates = events.updates(task_id)
    first = updates[0]
    for update in updates:
        for key in ("submitted_at", "args", "kwargs", "task_name"):
            assert update[key] == first[key], (update["status"], key)
        assert update["submitted_at"].endswith("+00:00")
    return updates


async def test_success_events_carry_the_full_record(app: Flowrra, events) -> None:
    @app.task(name="evt.add")
    async def add(a: int, b: int) -> int:
        return a + b

    task_id = await app.submit(add, 1, 2)
    await app.wait_for_result(task_id, timeout=5)
    updates = await _final(events, task_id, "success")
    assert [u["status"] for u in updates] == ["pending", "running", "success"]
    assert all(e["type"] == "task.update" for e in events.events if e["task"]["task_id"] == task_id)
    for update in updates:
        assert TASK_KEYS <= set(update)
        assert json.loads(json.dumps(update)) == update
        assert update["task_id"] == task_id and update["task_name"] == "evt.add"
    pending, running, success = updates
    assert pending["started_at"] is None and pending["finished_at"] is None
    assert running["started_at"] is not None and running["finished_at"] is None
    assert (success["result"], success["error"], success["retries"]) == (3, None, 0)
    assert success["finished_at"] is not None
    assert success == (await app.get_result(task_id)).to_dict


async def test_failure_and_retry_events(app: Flowrra, events) -> None:
    @app.task(name="evt.fail", max_retries=1, retry_delay=0.01)
    async def fail(*args, **kwargs) -> None:
        raise LookupError("nothing here")

    task_id = await app.submit(fail, 1, "a", key=[2])
    await app.wait_for_result(task_id, timeout=5)
    updates = await _final(events, task_id, "failed")
    assert updates[-1]["args"] == [1, "a"] and updates[-1]["kwargs"] == {"key": [2]}
    assert [u["status"] for u in updates] == ["pending", "running", "retrying", "running", "failed"]
    assert updates[2]["error"] == "LookupError: nothing here" and updates[2]["retries"] == 1
    assert updates[-1]["error"] == "LookupError: nothing here" and updates[-1]["retries"] == 1


async def test_cancel_events(make_app, events, gate) -> None:
    app = await make_app(io_workers=1)

    @app.task(name="evt.hold")
    async def hold(n: int) -> None:
        await gate.hold()

    running = await app.submit(hold, 1)
    await wait_until(lambda: gate.active == 1, message="running")
    waiting = await app.submit(hold, n=2)
    assert await app.cancel(waiting) and await app.cancel(running)
    assert [u["status"] for u in await _final(events, waiting, "cancelled")] == ["pending",
                                                                                   "cancelled"]
    assert [u["status"] for u in await _final(events, running, "cancelled")] == [
        "pending", "running", "cancelled"]


async def test_failing_subscriber_does_not_break_the_task(app: Flowrra, events) -> None:
    async def broken(event: dict) -> None:
        raise RuntimeError("bad subscriber")

    event_bus.subscribe(broken)
    try:
        @app.task(name="evt.ok")
        async def ok() -> str:
            return "fine"

        task_id = await app.submit(ok)
        assert (await app.wait_for_result(task_id, timeout=5)).result == "fine"
        await _final(events, task_id, "success")
    finally:
        await event_bus.unsubscribe(broken)


async def test_slow_subscriber_does_not_slow_tasks(app: Flowrra, events) -> None:
    release = asyncio.Event()

    async def stuck(event: dict) -> None:
        await release.wait()

    event_bus.subscribe(stuck)
    try:
        @app.task(name="evt.fast")
        async def fast(n: int) -> int:
            return n

        ids = [await app.submit(fast, n) for n in range(20)]
        results = [await app.wait_for_result(i, timeout=5) for i in ids]
        assert [r.result for r in results] == list(range(20))
        await wait_until(lambda: all("success" in events.statuses(i) for i in ids),
                         message="events to the healthy subscriber")
    finally:
        release.set()
        await event_bus.unsubscribe(stuck)


async def test_each_app_event_is_delivered_once(app: Flowrra, events) -> None:
    @app.task(name="evt.once")
    async def once() -> None: ...

    ids = [await app.submit(once) for _ in range(10)]
    for task_id in ids:
        await app.wait_for_result(task_id, timeout=5)
    for task_id in ids:
        assert await _final(events, task_id, "success")
        assert events.statuses(task_id) == ["pending", "running", "success"]


async def test_the_global_bus_does_not_keep_dropped_apps_alive() -> None:
    """Apps register a relay on the process-wide bus; dropping an app must free it (and its
    in-memory results), or a process that creates apps repeatedly grows without bound."""

    async def lifecycle() -> weakref.ref:
        app = Flowrra()

        @app.task(name="evt.gc")
        async def job() -> int:
            return 1

        async with app:
            await app.wait_for_result(await app.submit(job), timeout=5)
        return weakref.ref(app)

    # Each app lives in its own asyncio task, so no frame of this test can hold it.
    refs = [await asyncio.create_task(lifecycle()) for _ in range(3)]
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
