"""Several scheduler processes on one database fire each slot exactly once.

Three real processes share a PostgreSQL (or MariaDB) schedule store and a
durable SQLite broker; an interval schedule of 1 s runs for at least 30 slots.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from flowrra.scheduler import Scheduler, slot_task_id

SCRIPT = Path(__file__).with_name("sched_proc.py")
SRC = Path(__file__).resolve().parents[2] / "src"
PROCESSES = 3
SLOTS = 30


def submitted(workdir: Path) -> list[str]:
    ids: list[str] = []
    for path in workdir.glob("subs-*.txt"):
        ids += [line for line in path.read_text().splitlines() if line]
    return ids


def executions(workdir: Path) -> int:
    path = workdir / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def start_processes(url: str, workdir: Path,
                          claim_timeout: float = 10.0) -> list[asyncio.subprocess.Process]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    broker = f"sqlite:///{workdir / 'broker.db'}"
    backend = f"sqlite:///{workdir / 'results.db'}"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), url, str(workdir), broker, backend, str(claim_timeout),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            err = (await proc.stderr.read()).decode()[-3000:]
            pytest.fail(f"scheduler process did not start: {line!r}\n{err}")
    return procs


async def stop_processes(procs) -> list[str]:
    errors = []
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
        if proc.returncode != 0:
            errors.append(err.decode()[-3000:])
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("kind", [
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
])
async def test_each_slot_fires_exactly_once_across_processes(kind, spaces, tmp_path):
    space = await spaces(kind)
    procs = await start_processes(space.url, tmp_path)
    try:
        creator = Scheduler(None, space.new_store())  # e.g. the web UI
        sid = await creator.schedule_interval("eo.tick", 1, args=["x"])
        anchor = (await creator.get_scheduled_task(sid)).anchor_at
        await wait_until(lambda: len(set(submitted(tmp_path))) >= SLOTS + 1, SLOTS + 30,
                         f"{SLOTS + 1} slots to fire")
        await wait_until(lambda: executions(tmp_path) >= SLOTS, 30, f"{SLOTS} executions")
    finally:
        errors = await stop_processes(procs)
    assert errors == []

    ids = submitted(tmp_path)
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert duplicates == [], f"slots submitted more than once: {duplicates}"
    # no slot was lost: the fired slots are the consecutive slots 1..N of the schedule
    expected = [slot_task_id(sid, anchor + timedelta(seconds=k)) for k in range(1, len(ids) + 1)]
    assert sorted(ids) == sorted(expected)
    # every execution belongs to a distinct submitted slot (none ran twice)
    assert SLOTS <= executions(tmp_path) <= len(ids)
    task = await creator.get_scheduled_task(sid)
    assert task.run_count == len(ids)


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_killed_scheduler_loses_no_slot(spaces, tmp_path):
    """SIGKILL one of three schedulers mid-run: its leases expire and the others carry on."""
    space = await spaces("postgresql")
    procs = await start_processes(space.url, tmp_path, claim_timeout=2.0)
    try:
        creator = Scheduler(None, space.new_store())
        sid = await creator.schedule_interval("eo.tick", 1, args=["k"])
        anchor = (await creator.get_scheduled_task(sid)).anchor_at
        await wait_until(lambda: len(set(submitted(tmp_path))) >= 6, 30, "6 slots")
        procs[0].kill()
        await procs[0].wait()
        await wait_until(lambda: len(set(submitted(tmp_path))) >= 18, 40, "18 slots")
    finally:
        errors = await stop_processes(procs[1:])
    assert errors == []
    ids = submitted(tmp_path)
    distinct = set(ids)
    # at most the slot in flight at the kill was submitted twice (the broker dropped it)
    assert len(ids) - len(distinct) <= 1
    expected = {slot_task_id(sid, anchor + timedelta(seconds=k)) for k in range(1, len(distinct) + 1)}
    assert distinct == expected
    assert executions(tmp_path) <= len(distinct)
