"""The broker contract: every broker (memory, Redis, SQLite, ...) must pass all of it.

Properties that cannot hold for a broker (durability for the in-memory one) are
skipped through its capability flags (``durable``, ``shared``), never faked.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import pytest

from flowrra.brokers import Broker
from flowrra.task import Task
from tests.conftest import unique, wait_until

W = "worker-1"


def make_task(name: str = "job", **fields) -> Task:
    return Task(id=unique("task"), name=name, submitted_at=datetime.now(UTC), **fields)


async def drain(broker: Broker, queues=("default",), timeout: float = 0.2) -> list[Task]:
    out = []
    while (task := await broker.dequeue(list(queues), W, timeout=timeout)) is not None:
        out.append(task)
    return out


async def dequeue_within(broker: Broker, deadline: float, queues=("default",),
                         worker: str = W) -> Task | None:
    """Dequeue repeatedly until a task comes or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        task = await broker.dequeue(list(queues), worker, timeout=0.2)
        if task is not None:
            return task
    return None


# -- round trip ----------------------------------------------------------------------
async def test_round_trip_preserves_every_field(make_broker):
    async with make_broker() as broker:
        task = Task(
            id=unique("rt"), name="pkg.mod.job", args=(1, "two", [3.5, None], {"k": True}),
            kwargs={"a": {"nested": [1, 2]}, "s": "ünïcødé"}, max_retries=7, retry_delay=0.25,
            current_retry=2, priority=-3, cpu_bound=True, timeout=12.5, queue="special",
            submitted_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), eta=time.time() - 5,
        )
        assert await broker.enqueue(task) is True
        got = await broker.dequeue(["special"], W, timeout=2)
        assert got == task
        assert got.submitted_at.tzinfo is not None
        assert isinstance(got.args, tuple)
        await broker.ack(got)


async def test_enqueue_many_round_trip_in_order(make_broker):
    async with make_broker() as broker:
        tasks = [make_task(args=(i,)) for i in range(25)]
        await broker.enqueue_many(tasks)
        got = await drain(broker)
        assert [t.id for t in got] == [t.id for t in tasks]
        assert got == tasks


async def test_dequeue_only_from_requested_queues(make_broker):
    async with make_broker() as broker:
        await broker.enqueue(make_task(queue="other"))
        assert await broker.dequeue(["default"], W, timeout=0.1) is None
        assert (await broker.dequeue(["other"], W, timeout=1)).queue == "other"


# -- ordering ------------------------------------------------------------------------
async def test_priority_lower_first_fifo_among_equals_across_queues(make_broker):
    async with make_broker() as broker:
        plan = [("a", 5), ("a", 1), ("b", 1), ("b", 0), ("b", 5), ("a", 0), ("a", 1), ("b", -2)]
        tasks = [make_task(queue=q, priority=p, args=(i,)) for i, (q, p) in enumerate(plan)]
        for task in tasks:
            await broker.enqueue(task)
        got = await drain(broker, queues=("a", "b"))
        expected = sorted(tasks, key=lambda t: (t.priority, t.args[0]))
        assert [t.id for t in got] == [t.id for t in expected]


# -- delays ----------------------------------------------------------------------------
async def test_eta_delays_inside_the_broker(make_broker):
    async with make_broker() as broker:
        task = make_task(eta=time.time() + 0.6)
        await broker.enqueue(task)
        assert await broker.dequeue(["default"], W, timeout=0.05) is None
        assert (await broker.stats())["delayed"] == 1
        got = await dequeue_within(broker, 10)
        assert got is not None and got.id == task.id
        assert time.time() >= task.eta - 0.05  # not delivered (much) before its eta


async def test_waiting_dequeue_wakes_for_due_delayed_task(make_broker):
    async with make_broker() as broker:
        task = make_task(eta=time.time() + 0.3)
        await broker.enqueue(task)
        got = await broker.dequeue(["default"], W, timeout=5)
        assert got is not None and got.id == task.id


# -- dedupe and revoke -----------------------------------------------------------------
async def test_dedupe_drops_duplicate_ids(make_broker):
    async with make_broker() as broker:
        task = make_task()
        assert await broker.enqueue(task, dedupe=True) is True
        assert await broker.enqueue(Task(task.id, task.name), dedupe=True) is False
        got = await broker.dequeue(["default"], W, timeout=1)
        assert await broker.enqueue(Task(task.id, task.name), dedupe=True) is False  # leased
        await broker.ack(got)
        assert await broker.enqueue(Task(task.id, task.name), dedupe=True) is False  # ran
        assert await broker.dequeue(["default"], W, timeout=0.1) is None
        assert await broker.enqueue(make_task(), dedupe=True) is True


async def test_is_duplicate_answers_what_a_deduplicated_enqueue_would_do(make_broker):
    async with make_broker() as broker:
        plain, deduped = make_task(), make_task()
        assert await broker.is_duplicate(plain.id) is False
        await broker.enqueue(plain)
        assert await broker.is_duplicate(plain.id) is True  # queued
        got = await broker.dequeue(["default"], W, timeout=1)
        assert got is not None and got.id == plain.id
        assert await broker.is_duplicate(plain.id) is True  # leased
        await broker.ack(got)
        # Acknowledged and never deduplicated: forgotten (acks may land in the background).
        await wait_until(lambda: _not(broker.is_duplicate(plain.id)), message="ack to land")
        assert await broker.enqueue(Task(plain.id, plain.name), dedupe=True) is True
        await broker.enqueue(deduped, dedupe=True)
        got = await broker.dequeue(["default"], W, timeout=1)
        got = got if got.id == deduped.id else await broker.dequeue(["default"], W, timeout=1)
        await broker.ack(got)
        assert await broker.is_duplicate(deduped.id) is True  # remembered after it ran
        assert await broker.enqueue(Task(deduped.id, deduped.name), dedupe=True) is False


async def _not(answer) -> bool:
    return not await answer


async def test_revoke_queued_and_delayed(make_broker):
    async with make_broker() as broker:
        queued, delayed, kept = make_task(), make_task(eta=time.time() + 0.3), make_task()
        for task in (queued, delayed, kept):
            await broker.enqueue(task)
        assert await broker.revoke(queued.id) is True
        assert await broker.revoke(delayed.id) is True
        assert await broker.revoke(queued.id) is False
        assert await broker.revoke("no-such-task") is False
        got = await broker.dequeue(["default"], W, timeout=1)
        assert got.id == kept.id
        assert await broker.revoke(kept.id) is False  # leased: running, not revocable here
        await broker.ack(got)
        assert await dequeue_within(broker, 0.8) is None  # the delayed one stays revoked


async def test_revoked_id_can_be_queued_again(make_broker):
    async with make_broker() as broker:
        task = make_task()
        await broker.enqueue(task)
        assert await broker.revoke(task.id)
        await broker.enqueue(Task(task.id, task.name, args=("again",)))
        got = await drain(broker)
        assert [(t.id, t.args) for t in got] == [(task.id, ("again",))]


# -- leases ----------------------------------------------------------------------------
async def test_unacked_lease_expires_and_task_is_redelivered(make_broker):
    async with make_broker(visibility_timeout=0.3) as broker:
        task = make_task()
        await broker.enqueue(task)
        first = await broker.dequeue(["default"], W, timeout=1)
        assert first.id == task.id
        again = await dequeue_within(broker, 10, worker="worker-2")
        assert again is not None and again.id == task.id
        assert again == task
        await broker.ack(again)


async def test_extend_leases_prevents_redelivery(make_broker):
    async with make_broker(visibility_timeout=0.4) as broker:
        task = make_task()
        await broker.enqueue(task)
        held = await broker.dequeue(["default"], W, timeout=1)
        end = time.monotonic() + 1.5  # several visibility timeouts
        while time.monotonic() < end:
            await broker.extend_leases([held], W)
            assert await broker.dequeue(["default"], "worker-2", timeout=0.1) is None
        assert (await broker.stats())["leased"] == 1
        # once the holder stops renewing, the task comes back
        again = await dequeue_within(broker, 10, worker="worker-2")
        assert again is not None and again.id == task.id


async def test_extend_leases_only_renews_the_holders_lease(make_broker):
    async with make_broker(visibility_timeout=0.3) as broker:
        if not broker.shared:
            pytest.skip("single-process broker: every lease belongs to this process")
        task = make_task()
        await broker.enqueue(task)
        held = await broker.dequeue(["default"], W, timeout=1)

        async def someone_else_renews() -> None:
            while True:
                await broker.extend_leases([held], "intruder")
                await asyncio.sleep(0.05)

        renewer = asyncio.create_task(someone_else_renews())
        try:
            again = await dequeue_within(broker, 10, worker="worker-2")
        finally:
            renewer.cancel()
        assert again is not None and again.id == task.id


async def test_ack_removes_for_good(make_broker):
    async with make_broker(visibility_timeout=0.3) as broker:
        await broker.enqueue(make_task())
        got = await broker.dequeue(["default"], W, timeout=1)
        await broker.ack(got)
        assert await dequeue_within(broker, 1.0) is None
        stats = await broker.stats()
        assert stats["leased"] == 0 and stats["queued"] == 0


async def test_requeue_with_eta(make_broker):
    async with make_broker() as broker:
        task = make_task()
        await broker.enqueue(task)
        got = await broker.dequeue(["default"], W, timeout=1)
        got.current_retry += 1
        got.eta = time.time() + 1.0
        await broker.requeue(got)
        assert await broker.dequeue(["default"], W, timeout=0.05) is None
        stats = await broker.stats()
        assert stats["delayed"] == 1 and stats["leased"] == 0
        again = await dequeue_within(broker, 10)
        assert again.id == task.id and again.current_retry == 1


async def test_requeue_without_eta_is_immediately_claimable(make_broker):
    async with make_broker() as broker:
        await broker.enqueue(make_task())
        got = await broker.dequeue(["default"], W, timeout=1)
        got.current_retry = 1
        await broker.requeue(got)
        again = await broker.dequeue(["default"], W, timeout=1)
        assert again.id == got.id and again.current_retry == 1


async def test_release_hands_back_untouched(make_broker):
    async with make_broker() as broker:
        tasks = [make_task(args=(i,)) for i in range(3)]
        await broker.enqueue_many(tasks)
        claimed = [await broker.dequeue(["default"], W, timeout=1) for _ in range(2)]
        await broker.release(claimed)
        got = await drain(broker)
        assert sorted(t.id for t in got) == sorted(t.id for t in tasks)
        assert {t.id: t for t in got} == {t.id: t for t in tasks}
        assert (await broker.stats())["leased"] == 3


# -- dead letters ----------------------------------------------------------------------
async def test_dead_letters_list_retry_purge(make_broker):
    async with make_broker() as broker:
        tasks = [make_task(args=(i,), current_retry=3) for i in range(4)]
        await broker.enqueue_many(tasks)
        for _ in tasks:
            got = await broker.dequeue(["default"], W, timeout=1)
            await broker.dead_letter(got, f"boom {got.args[0]}")
        assert (await broker.stats())["dead"] == 4
        assert (await broker.stats())["leased"] == 0
        letters = await broker.list_dead_letters()
        assert [d.task_id for d in letters] == [t.id for t in reversed(tasks)]
        assert letters[0].error == "boom 3" and letters[0].task_name == "job"
        assert letters[0].payload["args"] == [3] and letters[0].failed_at.tzinfo is not None
        page = await broker.list_dead_letters(limit=2, offset=1)
        assert [d.task_id for d in page] == [tasks[2].id, tasks[1].id]

        retried = await broker.retry_dead_letter(tasks[0].id)
        assert retried is not None and retried.id == tasks[0].id and retried.current_retry == 0
        assert await broker.retry_dead_letter(tasks[0].id) is None
        assert await broker.retry_dead_letter("no-such-task") is None
        got = await broker.dequeue(["default"], W, timeout=1)
        assert got.id == tasks[0].id and got.current_retry == 0 and got.args == (0,)

        assert await broker.purge_dead_letters(tasks[1].id) == 1
        assert await broker.purge_dead_letters(tasks[1].id) == 0
        assert await broker.purge_dead_letters() == 2
        assert await broker.list_dead_letters() == []
        assert (await broker.stats())["dead"] == 0


async def test_undecodable_message_goes_to_dead_letters(make_broker, inject_raw):
    async with make_broker() as broker:
        await inject_raw(broker, "garbled-1", "{this is not json", "default")
        good = make_task()
        await broker.enqueue(good)
        got = await dequeue_within(broker, 5)
        assert got is not None and got.id == good.id
        letters = await broker.list_dead_letters()
        assert [(d.task_id, d.raw, d.payload) for d in letters] == [
            ("garbled-1", "{this is not json", None)]
        assert letters[0].error
        assert await broker.retry_dead_letter("garbled-1") is None  # nothing to rebuild from
        assert await broker.purge_dead_letters("garbled-1") == 1


# -- introspection ---------------------------------------------------------------------
async def test_stats_counts(make_broker):
    async with make_broker() as broker:
        await broker.enqueue_many([make_task(), make_task(), make_task()])
        await broker.enqueue(make_task(eta=time.time() + 60))
        got = await broker.dequeue(["default"], W, timeout=1)
        dead = await broker.dequeue(["default"], W, timeout=1)
        await broker.dead_letter(dead, "x")
        assert await broker.stats() == {"queued": 1, "delayed": 1, "leased": 1, "dead": 1}
        await broker.ack(got)
        assert (await broker.stats())["leased"] == 0


async def test_worker_registry(make_broker):
    async with make_broker() as broker:
        now = datetime.now(UTC).isoformat()
        await broker.register_worker("w-long", {"id": "w-long", "last_seen": now, "pid": 1}, ttl=30)
        await broker.register_worker("w-short", {"id": "w-short", "last_seen": now}, ttl=0.3)
        workers = {w["id"]: w for w in await broker.list_workers()}
        assert workers["w-long"]["pid"] == 1 and "last_seen" in workers["w-long"]
        await wait_until(lambda: _only(broker, {"w-long"}), timeout=5, message="w-short expiry")
        await broker.register_worker("w-long", {"id": "w-long", "last_seen": now, "pid": 2}, ttl=30)
        assert [w["pid"] for w in await broker.list_workers()] == [2]
        await broker.unregister_worker("w-long")
        assert await broker.list_workers() == []


async def _only(broker: Broker, ids: set[str]) -> bool:
    return {w["id"] for w in await broker.list_workers()} == ids


# -- waiting ---------------------------------------------------------------------------
async def test_dequeue_timeout_returns_none_after_about_timeout(make_broker):
    async with make_broker() as broker:
        start = time.monotonic()
        assert await broker.dequeue(["default"], W, timeout=0.3) is None
        elapsed = time.monotonic() - start
        assert 0.25 <= elapsed < 3.0


async def test_waiting_dequeue_gets_task_enqueued_later(make_broker, dequeue_waiting):
    async with make_broker() as broker:
        waiter = asyncio.create_task(broker.dequeue(["default"], W, timeout=10))
        await wait_until(lambda: dequeue_waiting(broker), message="the dequeue to wait")
        assert not waiter.done()
        task = make_task()
        await broker.enqueue(task)
        got = await asyncio.wait_for(waiter, 10)
        assert got is not None and got.id == task.id


async def test_cancelled_dequeue_loses_nothing(make_broker):
    async with make_broker() as broker:
        delivered: list[str] = []
        tasks = [make_task(args=(i,)) for i in range(15)]
        for task in tasks:
            waiter = asyncio.create_task(broker.dequeue(["default"], W, timeout=5))
            # Random pauses on purpose: the cancellation lands at a different point each time.
            await asyncio.sleep(random.choice([0, 0, 0.001, 0.02]))
            await broker.enqueue(task)
            await asyncio.sleep(random.choice([0, 0.0005, 0.002]))
            waiter.cancel()
            outcome = (await asyncio.gather(waiter, return_exceptions=True))[0]
            if isinstance(outcome, Task):
                delivered.append(outcome.id)
            else:
                got = await broker.dequeue(["default"], W, timeout=5)
                assert got is not None, f"task {task.id} was lost by a cancelled dequeue"
                delivered.append(got.id)
        assert delivered == [t.id for t in tasks]
        assert await broker.dequeue(["default"], W, timeout=0.1) is None


async def test_many_concurrent_dequeuers_each_task_once(make_broker, dequeue_waiting):
    async with make_broker() as broker:
        tasks = [make_task(args=(i,)) for i in range(200)]
        got: list[str] = []

        async def runner() -> None:
            while (task := await broker.dequeue(["default"], W, timeout=0.5)) is not None:
                got.append(task.id)
                await broker.ack(task)

        runners = [asyncio.create_task(runner()) for _ in range(50)]
        await wait_until(lambda: dequeue_waiting(broker), message="the runners to wait")
        for i in range(0, len(tasks), 20):
            await broker.enqueue_many(tasks[i:i + 20])
        await asyncio.wait_for(asyncio.gather(*runners), 30)
        assert sorted(got) == sorted(t.id for t in tasks)


# -- sharing and durability --------------------------------------------------------------
async def test_second_instance_sees_the_same_queue(make_broker):
    async with make_broker() as producer:
        if not producer.shared:
            pytest.skip("in-process broker: not shared between processes")
        async with make_broker() as consumer:
            task = make_task()
            await producer.enqueue(task)
            got = await consumer.dequeue(["default"], W, timeout=2)
            assert got == task
            await consumer.ack(got)

            async def acked() -> bool:  # acks may be flushed in the background
                return (await producer.stats())["leased"] == 0

            await wait_until(acked, timeout=5, message="the ack to reach the other instance")


async def test_queued_tasks_survive_close(make_broker):
    async with make_broker() as keeper:  # keeps the store alive across the reopen
        if not keeper.durable:
            pytest.skip("in-process broker: tasks live in process memory")
        task = make_task()
        async with make_broker() as first:
            await first.enqueue(task)
        async with make_broker() as second:
            assert await second.dequeue(["default"], W, timeout=2) == task
