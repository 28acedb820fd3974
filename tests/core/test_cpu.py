"""CPU-bound tasks run in worker processes, ``cpu_workers`` at once, with no server."""

from __future__ import annotations

import os

import pytest

from flowrra import Flowrra, TaskStatus
from tests.core import tasks_cpu

pytestmark = pytest.mark.timeout(60)


def _register(app: Flowrra) -> None:
    for func in (tasks_cpu.square, tasks_cpu.pid, tasks_cpu.explode, tasks_cpu.rendezvous,
                 tasks_cpu.wait_for_file, tasks_cpu.ignores_ctrl_c):
        app.task(cpu_bound=True, max_retries=0)(func)


async def test_cpu_task_runs_in_another_process(make_app) -> None:
    app = await make_app(cpu_workers=1)
    _register(app)
    square = await app.submit(tasks_cpu.square, 12)
    pid = await app.submit("pid")
    assert (await app.wait_for_result(square, timeout=30)).result == 144
    child = (await app.wait_for_result(pid, timeout=30)).result
    assert isinstance(child, int) and child != os.getpid()


async def test_cpu_workers_run_at_once(make_app, tmp_path) -> None:
    """Two tasks that each wait to see the other can only both meet if they run concurrently."""
    app = await make_app(cpu_workers=2)
    _register(app)
    a = await app.submit(tasks_cpu.rendezvous, str(tmp_path), "a", "b", 20.0)
    b = await app.submit(tasks_cpu.rendezvous, str(tmp_path), "b", "a", 20.0)
    first = await app.wait_for_result(a, timeout=30)
    second = await app.wait_for_result(b, timeout=30)
    assert first.result["met"] and second.result["met"]
    assert first.result["pid"] != second.result["pid"]


async def test_cpu_workers_limit(make_app, tmp_path) -> None:
    """With one CPU worker the same two tasks run one after the other and never meet."""
    app = await make_app(cpu_workers=1)
    _register(app)
    a = await app.submit(tasks_cpu.rendezvous, str(tmp_path), "a", "b", 0.5)
    b = await app.submit(tasks_cpu.rendezvous, str(tmp_path), "b", "a", 0.5)
    first = await app.wait_for_result(a, timeout=30)
    second = await app.wait_for_result(b, timeout=30)
    assert first.result["met"] is False  # "a" finished before "b" started
    assert second.result["met"] is True  # "b" then found the file "a" left behind


async def test_cpu_task_failure_keeps_error_and_traceback(make_app) -> None:
    app = await make_app(cpu_workers=1)
    _register(app)
    failing = await app.submit(tasks_cpu.explode, "from a child")
    result = await app.wait_for_result(failing, timeout=30)
    assert result.status is TaskStatus.FAILED
    assert result.error == "ValueError: from a child"
    assert "explode" in result.traceback
    assert (await app.wait_for_result(await app.submit(tasks_cpu.square, 3), timeout=30)).result == 9


async def test_cpu_task_time_limit(make_app, tmp_path) -> None:
    app = await make_app(cpu_workers=1)
    app.task(cpu_bound=True, timeout=0.3, max_retries=0, name="slow_cpu")(tasks_cpu.wait_for_file)
    release = tmp_path / "release"
    task_id = await app.submit("slow_cpu", str(release), 20.0)
    result = await app.wait_for_result(task_id, timeout=30)
    assert result.status is TaskStatus.FAILED and "time limit" in result.error
    release.touch()  # let the child finish so the pool frees up quickly


async def test_cpu_and_io_tasks_together(make_app) -> None:
    app = await make_app(cpu_workers=2, io_workers=2)
    _register(app)

    @app.task(name="io_add")
    async def io_add(a: int, b: int) -> int:
        return a + b

    ids = [await app.submit(tasks_cpu.square, n) for n in range(6)]
    ids += [await app.submit(io_add, n, n) for n in range(6)]
    results = [(await app.wait_for_result(i, timeout=30)).result for i in ids]
    assert results == [n * n for n in range(6)] + [2 * n for n in range(6)]


async def test_pool_processes_leave_ctrl_c_to_the_worker(make_app) -> None:
    """Ctrl-C in a terminal reaches the whole process group; running CPU tasks must survive it."""
    app = await make_app(cpu_workers=1)
    _register(app)
    task_id = await app.submit(tasks_cpu.ignores_ctrl_c)
    assert (await app.wait_for_result(task_id, timeout=30)).result is True
