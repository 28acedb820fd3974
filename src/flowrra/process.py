"""Running a worker or scheduler as its own process: signals and the stop sequence.

The first SIGTERM/SIGINT asks for a *warm* stop: stop claiming, let running tasks
finish within the shutdown timeout, then hand whatever is still running back to
the broker. A second signal turns it into a *cold* stop at once: running tasks
are interrupted and handed back (they run again elsewhere — at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowrra.app import Flowrra

logger = logging.getLogger("flowrra.process")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Counts stop signals: ``first`` is set by one, ``second`` by the next."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.second = asyncio.Event()
        self._installed: list[signal.Signals] = []
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.received, sig)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix loops
                self._previous[sig] = signal.signal(
                    sig, lambda signum, _frame: loop.call_soon_threadsafe(self.received, signum))

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        for sig, previous in self._previous.items():  # pragma: no cover - non-Unix loops
            signal.signal(sig, previous)
        self._installed.clear()
        self._previous.clear()

    def received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.first.is_set():
            self.first.set()
            logger.info("%s received: warm shutdown (send it again to stop now)", name)
        elif not self.second.is_set():
            self.second.set()
            logger.warning("%s received again: cold shutdown, handing running tasks back", name)


@dataclass
class WorkerOptions:
    concurrency: int | None = None
    cpu_workers: int | None = None
    queues: Sequence[str] | None = None
    shutdown_timeout: float = 30.0
    with_scheduler: bool = False


def _running_count(app: Flowrra) -> int:
    worker = app.worker
    if worker is None:
        return 0
    return sum(r.current is not None for e in worker.executors for r in e.runners)


async def _drain(app: Flowrra, signals: StopSignals, timeout: float) -> None:
    """Stop claiming and wait until running tasks finish, the timeout passes or a second signal."""
    worker = app.worker
    if worker is None:
        return
    for executor in worker.executors:
        executor.request_stop()
    running = _running_count(app)
    if running:
        logger.info("waiting up to %.0fs for %d running task(s) to finish", timeout, running)
    deadline = time.monotonic() + timeout
    while _running_count(app) and not signals.second.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning("shutdown timeout reached with %d task(s) still running",
                           _running_count(app))
            return
        # Woken by the second signal at once; otherwise re-check the runners often.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signals.second.wait(), timeout=min(0.05, remaining))


async def run_worker(app: Flowrra, options: WorkerOptions, signals: StopSignals | None = None) -> None:
    """Run ``app`` as a worker until a stop signal, then stop as described in the module doc."""
    signals = signals or StopSignals()
    signals.install()
    scheduler = None
    try:
        await app.start(consume=True, io_workers=options.concurrency,
                        cpu_workers=options.cpu_workers, queues=options.queues)
        if options.with_scheduler:
            scheduler = _scheduler_of(app)
            await scheduler.start()
        worker = app.worker
        assert worker is not None
        logger.info("worker %s started (pid %d): %d I/O slot(s) on %s, %d CPU process(es), "
                    "broker %s%s", worker.worker_id, os.getpid(), worker.io.concurrency,
                    ",".join(worker.io.queues), worker.cpu.concurrency, describe_broker(app),
                    ", with scheduler" if scheduler is not None else "")
        await signals.first.wait()
        if scheduler is not None:
            await scheduler.stop()
        await _drain(app, signals, options.shutdown_timeout)
        handed_back = _running_count(app)
        await app.stop(wait=False)
        logger.info("worker %s stopped (%d processed, %d failed, %d handed back)",
                    worker.worker_id, worker.processed, worker.failed, handed_back)
    finally:
        if app.is_running:  # start failed half-way, or we were cancelled
            await app.stop(wait=False)
        signals.remove()


async def run_scheduler(app: Flowrra, signals: StopSignals | None = None) -> None:
    """Run only the scheduler of ``app`` (submitting due tasks) until a stop signal."""
    signals = signals or StopSignals()
    signals.install()
    try:
        await app.connect()
        scheduler = _scheduler_of(app)
        await scheduler.start()
        logger.info("scheduler started (pid %d), broker %s", os.getpid(), describe_broker(app))
        await signals.first.wait()
        await scheduler.stop()
        logger.info("scheduler stopped")
    finally:
        await app.stop(wait=False)
        signals.remove()


def _scheduler_of(app: Flowrra) -> Any:
    config = app.config.scheduler
    return app.create_scheduler(check_interval=config.check_interval if config else 60.0)


def describe_broker(app: Flowrra) -> str:
    """The broker's URL without credentials, or its kind, for log lines."""
    cfg = app.config.broker
    if cfg is None:
        return f"{type(app.broker).__name__} (this process only)"
    url = cfg.url
    scheme, _, rest = url.partition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}://{rest}"
