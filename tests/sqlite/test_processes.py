"""Several processes sharing one SQLite file: nothing lost, nothing delivered twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from flowrra.backends.sqlite import SQLiteBackend
from flowrra.brokers.sqlite import SQLiteBroker
from flowrra.task import Task, utcnow
from flowrra.transports.sqlite import SQLiteTransport
from tests.conftest import wait_until

pytestmark = pytest.mark.slow


async def test_producers_and_consumers_in_several_processes_each_task_once(db_url, tmp_path, spawn):
    stop_file = tmp_path / "stop"
    async with asyncio.timeout(120):
        broker = SQLiteBroker(db_url)
        await broker.connect()  # creates the schema before the children race for it
        consumers = [await spawn("consume", db_url, f"consumer-{i}", str(stop_file)) for i in range(2)]
        for consumer in consumers:
            assert await consumer.line() == {"ready": True}
        producer = await spawn("produce", db_url, "child", "400")
        local = [Task(f"local-{i}", "job", submitted_at=utcnow()) for i in range(400)]
        for start in range(0, 400, 50):
            await broker.enqueue_many(local[start:start + 50])
        assert (await producer.finish())[0] == {"enqueued": 400}
        stop_file.touch()
        delivered: Counter[str] = Counter()
        for consumer in consumers:
            lines = await consumer.finish()
            delivered.update(lines[0]["ids"])
        await broker.close()
    expected = {f"local-{i}" for i in range(400)} | {f"child-{i}" for i in range(400)}
    assert set(delivered) == expected, f"lost: {sorted(expected - set(delivered))[:5]}"
    assert [task_id for task_id, n in delivered.items() if n > 1] == []


async def test_task_of_a_killed_process_is_delivered_again(db_url, spawn):
    broker = SQLiteBroker(db_url, visibility_timeout=0.5)
    await broker.connect()
    try:
        task = Task("survivor", "job", args=(1,), submitted_at=utcnow())
        await broker.enqueue(task)
        child = await spawn("claim-and-die", db_url, "0.5")
        assert (await child.line())["claimed"] == "survivor"
        await child.proc.wait()
        assert (await broker.stats())["leased"] == 1
        deadline = time.monotonic() + 10
        again = None
        while again is None and time.monotonic() < deadline:
            again = await broker.dequeue(["default"], "rescuer", timeout=0.5)
        assert again == task
        await broker.ack(again)
    finally:
        await broker.close()


async def test_wait_for_wakes_on_a_result_stored_by_another_process(db_url, spawn):
    backend = SQLiteBackend(db_url)
    await backend.connect()
    try:
        waiter = asyncio.create_task(backend.wait_for("remote-1", timeout=30))
        await wait_until(lambda: "remote-1" in backend._waiters, message="wait_for to register")
        child = await spawn("finish", db_url, "remote-1")
        record = await asyncio.wait_for(waiter, 30)
        assert record.result == 42 and record.is_success
        assert (await child.finish())[0] == {"stored": "remote-1"}
    finally:
        await backend.close()


async def test_events_of_another_process_reach_a_listener_in_order(db_url, spawn):
    transport = SQLiteTransport(db_url)
    received: list[dict] = []

    async def handler(event: dict) -> None:
        received.append(event)

    await transport.listen(handler)
    try:
        child = await spawn("publish", db_url, "300")
        assert (await child.finish())[0] == {"published": 300}
        await wait_until(lambda: len(received) >= 300, timeout=20, message="300 events")
        assert [e["n"] for e in received] == list(range(300))
        assert len({e["pid"] for e in received}) == 1
    finally:
        await transport.close()
