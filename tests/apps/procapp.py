"""The app that multi-process tests run in worker subprocesses.

``flowrra worker tests.apps.procapp:app`` builds it from the environment:
``FLOWRRA_BROKER_URL``, ``FLOWRRA_BROKER_VISIBILITY_TIMEOUT``,
``FLOWRRA_TEST_SIDE_DIR`` (where tasks log each execution) and optionally
``FLOWRRA_SCHEDULER_DATABASE_URL``. The test process
builds its producer with :func:`make_app` and the same values.

Every task appends ``start KEY PID`` and ``end KEY PID`` lines to
``<side dir>/executions.log`` (one ``O_APPEND`` write per line, atomic across
processes), so tests can count how many times each task really ran, and where.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

from flowrra import BrokerConfig, Config, ExecutorConfig, Flowrra, SchedulerConfig

LOG_NAME = "executions.log"


def log_execution(side_dir: str, event: str, key: str) -> None:
    fd = os.open(Path(side_dir) / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {key} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def read_executions(side_dir: str | Path) -> list[tuple[str, str, int]]:
    """All (event, key, pid) lines logged so far."""
    path = Path(side_dir) / LOG_NAME
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, key, pid = line.split()
        out.append((event, key, int(pid)))
    return out


def count(side_dir: str | Path, event: str = "start") -> Counter[str]:
    return Counter(key for ev, key, _pid in read_executions(side_dir) if ev == event)


def flag_set(flag: str) -> bool:
    return os.path.exists(flag)


def make_app(broker_url: str, visibility_timeout: float, side_dir: str | Path,
             scheduler_url: str | None = None) -> Flowrra:
    side = str(side_dir)
    scheduler = SchedulerConfig(scheduler_url, check_interval=0.5) if scheduler_url else None
    app = Flowrra(Config(broker=BrokerConfig(broker_url, visibility_timeout=visibility_timeout),
                         executor=ExecutorConfig(io_workers=4, cpu_workers=1), scheduler=scheduler))

    @app.task(name="record", max_retries=0)
    async def record(key: str) -> str:
        """Runs at once; logs its execution."""
        log_execution(side, "start", key)
        log_execution(side, "end", key)
        return key

    @app.task(name="block", max_retries=0)
    async def block(key: str, flag: str) -> str:
        """Runs until the file ``flag`` exists, so the test decides when it ends."""
        log_execution(side, "start", key)
        # The flag is set by another process, so there is no asyncio.Event to wait on.
        while not flag_set(flag):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        log_execution(side, "end", key)
        return key

    @app.task(name="sleep", max_retries=0)
    async def sleep(key: str, seconds: float) -> str:
        log_execution(side, "start", key)
        await asyncio.sleep(seconds)
        log_execution(side, "end", key)
        return key

    return app


_app: Flowrra | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            _app = make_app(os.environ["FLOWRRA_BROKER_URL"],
                            float(os.environ.get("FLOWRRA_BROKER_VISIBILITY_TIMEOUT", "30")),
                            os.environ["FLOWRRA_TEST_SIDE_DIR"],
                            os.environ.get("FLOWRRA_SCHEDULER_DATABASE_URL"))
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
