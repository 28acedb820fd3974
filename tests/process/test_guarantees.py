"""Delivery guarantees across real processes (SPEC section 4), on SQLite files and real Redis.

Workers are ``flowrra worker`` subprocesses; the test process is the producer.
Tasks log every execution to a side-channel file (tests/apps/procapp.py), so
"ran exactly once" is counted, not assumed. Visibility timeouts are chosen so
that only the mechanism under test can explain the outcome within the deadline.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from flowrra.events import event_bus
from tests.apps.procapp import count, read_executions
from tests.conftest import wait_until
from tests.process.conftest import RedisServer, require_durable, wait_all_success

pytestmark = pytest.mark.slow


def ended_on(side_dir, keys: list[str]) -> set[int]:
    """PIDs of the processes that finished these keys."""
    wanted = set(keys)
    return {pid for event, key, pid in read_executions(side_dir) if event == "end" and key in wanted}


async def test_tasks_of_a_killed_worker_run_again(broker_url, side_dir, tmp_path, start_worker,
                                                  make_producer):
    """(a) At-least-once: SIGKILL mid-run; a second worker runs the held tasks after the lease."""
    vt = 2.0
    producer = make_producer(broker_url, side_dir, vt)
    flag = tmp_path / "release"
    first = start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=3)
    await first.wait_started()
    keys = [f"k{i}" for i in range(5)]
    ids = [await producer.submit("block", key, str(flag)) for key in keys]
    await wait_until(lambda: len(count(side_dir)) >= 3, timeout=30, message="3 tasks running")
    held = set(count(side_dir))
    first.kill()  # SIGKILL: no chance to hand anything back
    second = start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=5)
    flag.touch()
    await wait_all_success(producer, ids, timeout=30)
    starts = count(side_dir)
    assert {key: starts[key] for key in held} == dict.fromkeys(held, 2)
    assert {key: starts[key] for key in keys if key not in held} == \
        {key: 1 for key in keys if key not in held}
    assert ended_on(side_dir, keys) == {second.pid}
    for task_id in ids:
        record = await producer.get_result(task_id)
        assert f":{second.pid}:" in (record.worker or ""), record.worker


async def test_long_task_on_a_live_worker_is_never_stolen(broker_url, side_dir, start_worker,
                                                          make_producer):
    """(b) A task running for 4x the visibility timeout keeps its lease; nobody else runs it."""
    vt = 1.5
    producer = make_producer(broker_url, side_dir, vt)
    workers = [start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=2)
               for _ in range(2)]
    for worker in workers:
        await worker.wait_started()
    long_id = await producer.submit("sleep", "long", 4 * vt)
    await wait_until(lambda: count(side_dir)["long"] == 1, timeout=30, message="long task started")
    # Both workers keep consuming meanwhile (each has a free slot polling the broker).
    quick = [await producer.submit("record", f"q{i}") for i in range(6)]
    await wait_all_success(producer, quick, timeout=30)
    record = await producer.wait_for_result(long_id, timeout=60)
    assert record.is_success
    assert count(side_dir)["long"] == 1
    assert all(worker.alive() for worker in workers)


async def test_sigterm_finishes_running_tasks_and_leaves_queued_ones(broker_url, side_dir, tmp_path,
                                                                     start_worker, make_producer):
    """(c) Graceful stop: running tasks finish, queued ones stay queued for the next worker."""
    vt = 60.0  # far beyond every deadline here: lease expiry cannot explain anything
    producer = make_producer(broker_url, side_dir, vt)
    flag = tmp_path / "release"
    first = start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=2)
    await first.wait_started()
    running = [await producer.submit("block", f"r{i}", str(flag)) for i in range(2)]
    await wait_until(lambda: len(count(side_dir)) == 2, timeout=30, message="2 tasks running")
    queued_keys = [f"q{i}" for i in range(4)]
    queued = [await producer.submit("record", key) for key in queued_keys]
    first.send(signal.SIGTERM)
    await first.wait_for_output("waiting up to 30s for 2 running task(s)")
    assert first.alive()  # still waiting: the running tasks cannot end before the flag exists
    flag.touch()
    assert await first.wait_exit(30) == 0
    assert "stopped (2 processed, 0 failed, 0 handed back)" in first.output()
    for task_id in running:
        assert (await producer.get_result(task_id)).is_success
    for task_id in queued:
        assert (await producer.get_result(task_id)).status.value == "pending"
    assert not any(count(side_dir)[key] for key in queued_keys)
    second = start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=2)
    await wait_all_success(producer, queued, timeout=30)
    assert ended_on(side_dir, queued_keys) == {second.pid}
    assert all(count(side_dir)[key] == 1 for key in [*queued_keys, "r0", "r1"])


async def test_second_signal_hands_running_tasks_back_at_once(broker_url, side_dir, tmp_path,
                                                              start_worker, make_producer):
    """(c) Cold stop: a second SIGTERM interrupts and hands back; the next worker runs them."""
    vt = 60.0  # the next worker gets them long before any lease could expire
    producer = make_producer(broker_url, side_dir, vt)
    flag = tmp_path / "release"
    first = start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=2,
                         shutdown_timeout=3600)
    await first.wait_started()
    ids = [await producer.submit("block", f"c{i}", str(flag)) for i in range(2)]
    await wait_until(lambda: len(count(side_dir)) == 2, timeout=30, message="2 tasks running")
    first.send(signal.SIGTERM)
    await first.wait_for_output("waiting up to 3600s for 2 running task(s)")
    first.send(signal.SIGTERM)
    assert await first.wait_exit(30) == 0
    assert "2 handed back" in first.output()
    for task_id in ids:  # handed back untouched: waiting again
        assert (await producer.get_result(task_id)).status.value == "pending"
    second = start_worker(broker_url, side_dir, visibility_timeout=vt, concurrency=2)
    flag.touch()
    await wait_all_success(producer, ids, timeout=30)
    assert count(side_dir) == {"c0": 2, "c1": 2}
    assert ended_on(side_dir, ["c0", "c1"]) == {second.pid}


async def test_two_workers_run_2000_tasks_exactly_once(broker_url, side_dir, start_worker,
                                                       make_producer):
    """(d) One producer, two workers, 2,000 tasks: one success each, none lost, none run twice."""
    producer = make_producer(broker_url, side_dir, 30.0)
    workers = [start_worker(broker_url, side_dir, concurrency=50) for _ in range(2)]
    keys = [f"n{i}" for i in range(2000)]
    ids: list[str] = []
    for start in range(0, len(keys), 500):
        ids += await producer.submit_many([("record", (key,), {}) for key in keys[start:start + 500]])
    assert len(set(ids)) == 2000

    async def all_succeeded() -> bool:
        return (await producer.backend.count_by_status()).get("success", 0) >= 2000

    await wait_until(all_succeeded, timeout=120, interval=0.2, message="2000 successes")
    counts = await producer.backend.count_by_status()
    assert counts["success"] == 2000
    assert sum(counts.values()) == 2000
    for task_id, key in zip(ids, keys, strict=True):
        record = await producer.get_result(task_id)
        assert record.is_success and record.result == key
    starts, ends = count(side_dir, "start"), count(side_dir, "end")
    assert len(starts) == 2000 and set(starts.values()) == {1}
    assert starts == ends
    assert all(worker.alive() for worker in workers)


async def test_events_of_another_process_reach_the_local_bus(broker_url, side_dir, start_worker,
                                                             make_producer):
    """(e) A subscriber here sees pending, running and success of a task run by a worker process."""
    producer = make_producer(broker_url, side_dir, 30.0)
    seen: list[tuple[str, str]] = []

    async def collect(event: dict[str, Any]) -> None:
        if event.get("type") == "task.update":
            seen.append((event["task"]["task_id"], event["task"]["status"]))

    await event_bus.async_subscribe(collect)
    try:
        worker = start_worker(broker_url, side_dir)
        await worker.wait_started()
        task_id = await producer.submit("record", "ev")
        await wait_until(lambda: (task_id, "success") in seen, timeout=30,
                         message="the success event relayed from the worker")
        statuses = [status for tid, status in seen if tid == task_id]
        assert statuses == ["pending", "running", "success"]
        assert count(side_dir)["ev"] == 1
    finally:
        await event_bus.unsubscribe(collect)


@pytest.mark.redis
async def test_work_survives_a_redis_restart(tmp_path, side_dir, start_worker, make_producer):
    """(f) Restart the Redis server under a worker and a producer; everything still completes."""
    require_durable("redis")
    server = RedisServer(tmp_path / "redis", appendonly=True)  # data survives the restart
    server.start()
    try:
        vt = 5.0
        producer = make_producer(server.url, side_dir, vt)
        worker = start_worker(server.url, side_dir, visibility_timeout=vt, concurrency=4)
        await worker.wait_started()
        before = [await producer.submit("record", f"b{i}") for i in range(10)]
        await wait_all_success(producer, before, timeout=30)
        flag = tmp_path / "release"
        inflight = [await producer.submit("block", f"f{i}", str(flag)) for i in range(2)]
        await wait_until(lambda: count(side_dir)["f0"] and count(side_dir)["f1"], timeout=30,
                         message="2 tasks running")
        server.stop()
        server.start()
        flag.touch()
        after = [await producer.submit("record", f"a{i}") for i in range(10)]
        await wait_all_success(producer, inflight + after, timeout=60)
        assert worker.alive()
        assert all(count(side_dir)[f"a{i}"] >= 1 for i in range(10))
    finally:
        server.stop()
