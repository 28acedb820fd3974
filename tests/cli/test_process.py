"""flowrra.process in this process (in-memory broker): warm stop, shutdown timeout, cold stop.

Signals are delivered by calling :meth:`StopSignals.received` directly, so the test
process's own signal handling is never touched; the real-signal path is covered by
the subprocess tests in tests/process/.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest

from flowrra import Config, Flowrra, SchedulerConfig, TaskStatus
from flowrra.process import StopSignals, WorkerOptions, describe_broker, run_scheduler, run_worker
from tests.conftest import wait_until


class FakeSignals(StopSignals):
    """StopSignals that never installs OS handlers."""

    def install(self) -> None:
        pass

    def remove(self) -> None:
        pass


def make_app() -> tuple[Flowrra, asyncio.Event]:
    app = Flowrra(Config(scheduler=SchedulerConfig(database_url="memory://")))
    gate = asyncio.Event()

    @app.task(name="block", max_retries=0)
    async def block(key: str) -> str:
        await gate.wait()
        return key

    @app.task(name="quick", max_retries=0)
    async def quick(key: str) -> str:
        return key

    return app, gate


async def status(app: Flowrra, task_id: str) -> TaskStatus | None:
    record = await app.backend.get(task_id)
    return None if record is None else record.status


async def start_worker(app: Flowrra, options: WorkerOptions) -> tuple[asyncio.Task[None], FakeSignals]:
    signals = FakeSignals()
    runner = asyncio.get_running_loop().create_task(run_worker(app, options, signals))
    await wait_until(lambda: app.is_running, message="worker running")
    return runner, signals


async def submit_blocked(app: Flowrra, count: int) -> list[str]:
    ids = [await app.submit("block", f"b{i}") for i in range(count)]
    for task_id in ids:
        await wait_until(lambda t=task_id: _is(app, t, TaskStatus.RUNNING), message="task running")
    return ids


async def _is(app: Flowrra, task_id: str, wanted: TaskStatus) -> bool:
    return await status(app, task_id) is wanted


async def test_warm_stop_finishes_running_tasks_and_leaves_queued_ones(caplog):
    caplog.set_level(logging.INFO, logger="flowrra.process")
    app, gate = make_app()
    runner, signals = await start_worker(app, WorkerOptions(concurrency=2, shutdown_timeout=30))
    blocked = await submit_blocked(app, 2)
    queued = [await app.submit("quick", f"q{i}") for i in range(3)]
    signals.received(signal.SIGTERM)
    await wait_until(lambda: "warm shutdown" in caplog.text, message="warm shutdown logged")
    assert not runner.done()  # waiting for the two running tasks
    gate.set()
    await asyncio.wait_for(runner, 10)
    assert [await status(app, t) for t in blocked] == [TaskStatus.SUCCESS] * 2
    assert [await status(app, t) for t in queued] == [TaskStatus.PENDING] * 3
    assert (await app.broker.stats())["queued"] == 3
    assert "stopped (2 processed, 0 failed, 0 handed back)" in caplog.text
    # The next worker runs what was left.
    await app.start()
    try:
        for task_id in queued:
            assert (await app.wait_for_result(task_id, timeout=10)).result.startswith("q")
    finally:
        await app.stop()


async def test_shutdown_timeout_hands_running_tasks_back(caplog):
    caplog.set_level(logging.INFO, logger="flowrra.process")
    app, gate = make_app()
    runner, signals = await start_worker(app, WorkerOptions(concurrency=1, shutdown_timeout=0.2))
    [blocked] = await submit_blocked(app, 1)
    signals.received(signal.SIGTERM)
    await asyncio.wait_for(runner, 10)
    assert "shutdown timeout reached with 1 task(s) still running" in caplog.text
    assert "1 handed back" in caplog.text
    stats = await app.broker.stats()
    assert (stats["queued"], stats["leased"]) == (1, 0)
    gate.set()
    await app.start()
    try:
        assert (await app.wait_for_result(blocked, timeout=10)).is_success
    finally:
        await app.stop()


async def test_second_signal_stops_at_once_and_hands_back(caplog):
    caplog.set_level(logging.INFO, logger="flowrra.process")
    app, _gate = make_app()
    runner, signals = await start_worker(app, WorkerOptions(concurrency=2, shutdown_timeout=3600))
    blocked = await submit_blocked(app, 2)
    signals.received(signal.SIGTERM)
    await wait_until(lambda: "waiting up to 3600s for 2 running task(s)" in caplog.text,
                     message="drain started")
    signals.received(signal.SIGINT)
    await asyncio.wait_for(runner, 10)
    assert "SIGINT received again: cold shutdown" in caplog.text
    assert "2 handed back" in caplog.text
    assert (await app.broker.stats())["queued"] == 2
    # Handed back untouched: waiting again, as before it was claimed.
    assert [await status(app, t) for t in blocked] == [TaskStatus.PENDING] * 2


async def test_with_scheduler_starts_and_stops_it(caplog):
    caplog.set_level(logging.INFO, logger="flowrra.process")
    app, _gate = make_app()
    runner, signals = await start_worker(app, WorkerOptions(with_scheduler=True))
    await wait_until(lambda: app.scheduler is not None and app.scheduler.is_running,
                     message="scheduler running")
    assert "with scheduler" in caplog.text
    signals.received(signal.SIGTERM)
    await asyncio.wait_for(runner, 10)
    assert not app.scheduler.is_running and not app.is_running


async def test_run_scheduler_until_signal():
    app, _gate = make_app()
    signals = FakeSignals()
    runner = asyncio.get_running_loop().create_task(run_scheduler(app, signals))
    await wait_until(lambda: app.scheduler is not None and app.scheduler.is_running,
                     message="scheduler running")
    assert not app.is_running  # the scheduler alone consumes nothing
    signals.received(signal.SIGTERM)
    await asyncio.wait_for(runner, 10)
    assert not app.scheduler.is_running


async def test_real_signal_handlers_are_installed_and_removed():
    signals = StopSignals()
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGTERM)
    signals.install()
    try:
        assert signal.SIGTERM in signals._installed and signal.SIGINT in signals._installed
        loop.call_soon(signals.received, signal.SIGTERM)  # what the loop's handler does
        await asyncio.wait_for(signals.first.wait(), 5)
        assert not signals.second.is_set()
    finally:
        signals.remove()
    assert signals._installed == []
    assert signal.getsignal(signal.SIGTERM) in (before, signal.SIG_DFL)


@pytest.mark.parametrize("url, shown", [
    ("redis://user:secret@host:6379/0", "redis://***@host:6379/0"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_describe_broker_hides_credentials(url, shown):
    from flowrra import BrokerConfig

    app = Flowrra.__new__(Flowrra)
    app.config = Config(broker=BrokerConfig(url))
    assert describe_broker(app) == shown
