"""flowrra 0.1.8's task names and event bus, as its README, QUICKSTART and WEBSOCKET guide show.

Names: the task name defaults to the function name; the scheduler
guide refers to tasks by that name (``task_name="send_daily_report"``). Events:
the WebSocket guide's subscribers are awaited by ``emit``, so code that emits
and then checks what a subscriber got sees the event.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowrra import Flowrra, RegistrationError, TaskStatus
from flowrra.events import EventBus, event_bus

ROOT = Path(__file__).resolve().parents[2]


async def test_default_name_is_the_function_name_even_when_nested() -> None:
    app = Flowrra.from_urls()

    async def main() -> str:
        @app.task()
        async def send_email(to: str) -> str:
            return f"sent to {to}"

        async with app:
            task_id = await app.submit("send_email", "a@example.com")
            return (await app.wait_for_result(task_id, timeout=10)).result

    assert await main() == "sent to a@example.com"
    assert app.registry.list_tasks() == ["send_email"]


async def test_explicit_name_is_kept() -> None:
    app = Flowrra.from_urls()

    @app.task(name="custom.name")
    async def job() -> int:
        return 7

    async with app:
        by_name = await app.submit("custom.name")
        by_function = await app.submit(job)
        assert (await app.wait_for_result(by_name, timeout=10)).result == 7
        assert (await app.wait_for_result(by_function, timeout=10)).task_name == "custom.name"


def test_duplicate_name_is_a_value_error_that_says_what_to_do() -> None:
    app = Flowrra.from_urls()

    @app.task()
    async def hello() -> None: ...

    def other() -> object:
        async def hello() -> None: ...
        return hello

    with pytest.raises(ValueError, match="name=") as info:  # 0.1.8 raised ValueError too
        app.task()(other())
    assert isinstance(info.value, RegistrationError)


async def test_schedule_refers_to_the_task_by_its_function_name(tmp_path: Path) -> None:
    app = Flowrra.from_urls()

    @app.task()
    async def send_daily_report() -> None: ...

    scheduler = app.create_scheduler(backend=f"sqlite:///{tmp_path / 's.db'}")
    schedule_id = await scheduler.schedule_cron(task_name="send_daily_report", cron="0 9 * * *")
    assert (await scheduler.get_scheduled_task(schedule_id)).task_name == "send_daily_report"
    await scheduler.stop()


@pytest.mark.slow
def test_worker_importing_the_module_by_another_path_agrees_on_names(tmp_path: Path) -> None:
    """A script run as __main__ submits by name; the worker imports it as a module."""
    (tmp_path / "jobs.py").write_text(textwrap.dedent("""
        import asyncio, sys
        from flowrra import Flowrra

        app = Flowrra.from_urls(broker=sys.argv[1] if __name__ == "__main__" else URL)

        @app.task()
        async def add(a, b):
            return a + b
    """).replace("URL", repr(f"sqlite:///{tmp_path / 'q.db'}")))
    producer = textwrap.dedent(f"""
        import asyncio, runpy, sys
        sys.argv = ["jobs.py", {f"sqlite:///{tmp_path / 'q.db'}"!r}]
        namespace = runpy.run_path("jobs.py", run_name="__main__")
        import jobs  # the same definitions, under a second module path

        async def main():
            app = namespace["app"]
            app.task()(jobs.add)  # the same function imported twice is one task, not an error
            task_id = await app.submit("add", 2, 3)
            print((await app.wait_for_result(task_id, timeout=60)).result)
            await app.stop()

        asyncio.run(main())
    """)
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    worker = subprocess.Popen([sys.executable, "-m", "flowrra", "worker", "jobs:app"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        done = subprocess.run([sys.executable, "-c", producer], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=90)
    finally:
        worker.terminate()
        worker_output = worker.communicate(timeout=30)[0].decode()
    assert done.returncode == 0, done.stderr + worker_output
    assert done.stdout.strip() == "5"


async def test_emit_then_check_sees_the_event() -> None:
    """The WebSocket guide's pattern: subscribe, emit, then read what was received."""
    received: list[dict] = []

    async def on_event(event: dict) -> None:
        await asyncio.sleep(0.01)  # a subscriber doing I/O before it records the event
        received.append(event)

    event_bus.subscribe(on_event)
    try:
        await event_bus.emit({"type": "task.update", "task": {"task_id": "t1"}})
        assert received == [{"type": "task.update", "task": {"task_id": "t1"}}]
        assert on_event in event_bus._subscribers
    finally:
        await event_bus.unsubscribe(on_event)
    assert on_event not in event_bus._subscribers


async def test_failing_subscriber_does_not_stop_emit_or_the_others() -> None:
    bus = EventBus()
    got: list[int] = []

    async def broken(event: dict) -> None:
        raise RuntimeError("bug in a subscriber")

    async def good(event: dict) -> None:
        got.append(event["n"])

    bus.subscribe(broken)
    bus.subscribe(good)
    await bus.emit({"n": 1})
    assert got == [1]


async def test_subscriber_sees_pending_running_and_success_of_a_task() -> None:
    app = Flowrra.from_urls()
    seen: list[str] = []

    @app.task()
    async def job() -> int:
        return 1

    async def on_event(event: dict) -> None:
        if event.get("type") == "task.update":
            seen.append(event["task"]["status"])

    event_bus.subscribe(on_event)
    try:
        async with app:
            task_id = await app.submit(job)
            result = await app.wait_for_result(task_id, timeout=10)
            await event_bus.emit({"type": "flush"})  # returns after on_event has had everything
    finally:
        await event_bus.unsubscribe(on_event)
    assert result.status is TaskStatus.SUCCESS
    assert seen == ["pending", "running", "success"]


@pytest.mark.slow
def test_script_without_main_guard_runs_its_cpu_task_once(tmp_path: Path) -> None:
    """0.1.8's README CPU example: tasks in the script itself, no ``__main__`` guard."""
    (tmp_path / "script.py").write_text(textwrap.dedent("""
        import asyncio
        from flowrra import Flowrra

        app = Flowrra.from_urls()
        print("top level ran")

        @app.task(cpu_bound=True)
        def square(n: int) -> int:
            return n * n

        async def main():
            async with app:
                task_id = await app.submit(square, 12)
                result = await app.wait_for_result(task_id, timeout=60)
                print(f"Result: {result.result}")

        asyncio.run(main())
    """))
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["top level ran", "Result: 144"], done.stdout + done.stderr


def test_start_methods() -> None:
    from flowrra.runners import start_method
    from tests.core.tasks_cpu import square

    def local() -> None: ...
    local.__module__ = "__main__"
    expected = ("fork", "forkserver") if sys.platform.startswith("linux") else ("spawn", "spawn")
    assert (start_method(local), start_method(square)) == expected
