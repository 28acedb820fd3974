"""``flowrra demo``: submit a mix of example tasks and watch them run, with no setup.

By default the broker is a SQLite file in a temporary directory and the tasks run
in a real ``flowrra worker`` subprocess; this process only submits and listens,
so what you see arrives through the cross-process event relay exactly as a web
dashboard would see it. ``--in-process`` runs the worker here instead.

The live view is driven by ``task.update`` events on :data:`flowrra.events.event_bus`;
completion is awaited through the result API, never by polling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from flowrra.app import Flowrra

APP_REF = "flowrra.demo_tasks:app"
FINAL = ("success", "failed", "cancelled")
STATUSES = ("pending", "running", "retrying", "success", "failed", "cancelled")
STYLES = {"pending": "grey62", "running": "cyan", "retrying": "yellow", "success": "green",
          "failed": "red", "cancelled": "magenta"}

#: (task name, share of the mix, priority, what it shows). Submitted in this order,
#: so the urgent alerts go in last and still overtake the queued low-priority work.
MIX: tuple[tuple[str, float, int, str], ...] = (
    ("nightly_cleanup", 0.25, 9, "low priority (9)"),
    ("fetch_page", 0.30, 5, "succeeds"),
    ("flaky_api", 0.10, 5, "fails twice, then succeeds"),
    ("broken_report", 0.05, 5, "fails for good (dead letter)"),
    ("slow_export", 0.05, 5, "exceeds its 1 s time limit"),
    ("crunch_numbers", 0.15, 5, "CPU-bound, in a process pool"),
    ("urgent_alert", 0.10, 0, "high priority (0)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", type=_count, default=40, metavar="N",
                        help="how many tasks to submit (default: 40)")
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="broker URL, e.g. sqlite:///demo.db or redis://127.0.0.1:6379/0 "
                             "(default: a SQLite file in a temporary directory)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the worker inside this process instead of a subprocess")
    parser.add_argument("--concurrency", type=_count, default=8, metavar="N",
                        help="I/O tasks run at once by the worker (default: 8)")
    parser.add_argument("--ui", action=argparse.BooleanOptionalAction, default=None,
                        help="also serve the dashboard (default: on when it is installed)")
    parser.add_argument("--host", default="127.0.0.1", help="dashboard address (with --ui)")
    parser.add_argument("--port", type=int, default=8000, help="dashboard port (with --ui)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="give up if the tasks are not all done by then (default: 120)")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, got {value}")
    return value


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def plan(total: int) -> list[tuple[str, int, tuple[Any, ...]]]:
    """The (task, priority, args) list to submit: every kind at least once, in MIX order."""
    counts = {name: max(1, round(total * share)) for name, share, _p, _d in MIX}
    while sum(counts.values()) > max(total, len(MIX)):  # rounding overshoot: trim the biggest
        biggest = max(counts, key=lambda n: counts[n])
        counts[biggest] -= 1
    run_id = uuid.uuid4().hex[:6]
    calls: list[tuple[str, int, tuple[Any, ...]]] = []
    for name, _share, priority, _desc in MIX:
        for i in range(counts[name]):
            args: tuple[Any, ...] = (i,)
            if name == "flaky_api":
                args = (f"{run_id}-{i}",)
            elif name == "crunch_numbers":
                args = (300_000 + 50_000 * i,)
            calls.append((name, priority, args))
    return calls


@dataclass
class DemoView:
    """Everything on screen; rebuilt by rich on each refresh from the latest events."""

    names: dict[str, str] = field(default_factory=dict)  # task id -> task name
    status: dict[str, str] = field(default_factory=dict)  # task id -> latest status
    retries: Counter[str] = field(default_factory=Counter)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    events: int = 0
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]tasks"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
        self.bar = self.progress.add_task("tasks", total=0, detail="")

    def expect(self, task_id: str, name: str) -> None:
        self.names[task_id] = name
        self.status.setdefault(task_id, "pending")
        self._refresh()

    def apply(self, record: dict[str, Any]) -> None:
        """Take one ``task.update``; a final state never goes back (relays may reorder)."""
        task_id = record.get("task_id")
        if task_id not in self.names:
            return  # another producer's task on a shared broker
        new = str(record.get("status"))
        old = self.status.get(task_id)
        self.events += 1
        if old in FINAL and new != old:
            return
        if new == "retrying" and old != "retrying":
            self.retries[task_id] += 1
        self.status[task_id] = new
        if new != old:
            error = str(record.get("error") or "").replace("[", "(").replace("\n", " ")
            note = f" — {error}" if new in ("retrying", "failed") and error else ""
            self.recent.append(f"[{STYLES.get(new, 'white')}]{new:>9}[/] "
                               f"{self.names[task_id]} {task_id[:8]}{note[:100]}")
        self._refresh()

    def _refresh(self) -> None:
        done = sum(1 for s in self.status.values() if s in FINAL)
        running = sum(1 for s in self.status.values() if s == "running")
        self.progress.update(self.bar, total=len(self.names), completed=done,
                             detail=f"{running} running, {self.events} events")

    def table(self, title: str, describe: bool = False) -> Table:
        present = set(self.status.values())
        columns = [s for s in STATUSES if s in present or (not describe and s != "cancelled")]
        table = Table(title=title, title_justify="left", expand=False, padding=(0, 1))
        table.add_column("task", no_wrap=True)
        for status in columns:
            table.add_column(status, justify="right", style=STYLES[status], no_wrap=True)
        table.add_column("retries", justify="right", no_wrap=True)
        if describe:
            table.add_column("what it shows")
        descriptions = {name: description for name, _s, _p, description in MIX}
        per: dict[str, Counter[str]] = {name: Counter() for name, *_ in MIX}
        retries: Counter[str] = Counter()
        for task_id, name in self.names.items():
            per.setdefault(name, Counter())[self.status[task_id]] += 1
            retries[name] += self.retries[task_id]
        for name, counts in per.items():
            cells = [name, *(str(counts[s] or "") for s in columns), str(retries[name] or "")]
            table.add_row(*cells, *([descriptions.get(name, "")] if describe else []))
        return table

    def __rich__(self) -> Group:
        recent = Table.grid()
        recent.add_column(no_wrap=True, overflow="ellipsis")
        for line in self.recent:
            recent.add_row(line)
        return Group(self.progress, self.table("live status"), recent)

    def totals(self) -> Counter[str]:
        return Counter(self.status.values())


# -- where the worker runs ------------------------------------------------------------
def sqlite_available() -> bool:
    return importlib.util.find_spec("flowrra.brokers.sqlite") is not None


def ui_available() -> bool:
    return (importlib.util.find_spec("flowrra.ui") is not None
            and importlib.util.find_spec("flowrra.ui.standalone") is not None)


@dataclass
class Setup:
    broker_url: str | None  # None: in-memory, worker in this process
    in_process: bool
    workdir: Path
    ui: bool
    note: str = ""

    def env(self) -> dict[str, str]:
        """The FLOWRRA_* variables that configure the demo app, here and in subprocesses."""
        env = {}
        if self.broker_url:
            env["FLOWRRA_BROKER_URL"] = self.broker_url
        if self.ui:  # the dashboard shows schedules; the scheduler keeps work coming
            env["FLOWRRA_SCHEDULER_DATABASE_URL"] = f"sqlite:///{self.workdir / 'schedules.db'}"
            env["FLOWRRA_SCHEDULER_CHECK_INTERVAL"] = "1"
        return env


def choose_setup(args: argparse.Namespace, workdir: Path) -> Setup:
    ui = ui_available() if args.ui is None else args.ui
    if ui and not ui_available():
        raise DemoError("--ui needs the dashboard (flowrra.ui.standalone), which is not "
                        "available in this installation.")
    if ui and not _port_free(args.host, args.port):
        raise DemoError(f"port {args.port} on {args.host} is in use; pass --port N, or --no-ui.")
    if args.broker:
        return Setup(args.broker, args.in_process, workdir, ui)
    if args.in_process:
        return Setup(None, True, workdir, ui, "in-memory broker, worker in this process")
    if not sqlite_available():
        return Setup(None, True, workdir, ui, "SQLite broker not available: in-memory broker, "
                     "worker in this process")
    return Setup(f"sqlite:///{workdir / 'flowrra-demo.db'}", False, workdir, ui)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Parts:
    """What runs beside the demo: subprocesses (worker, dashboard) or in-process tasks."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def spawn(self, name: str, *cli_args: str) -> None:
        log = self.setup.workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
        env.update(self.setup.env())
        with log.open("wb") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "flowrra", *cli_args], env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)  # Ctrl-C reaches only the demo, which stops them in order
        self.logs[name] = log

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise DemoError(f"the {name} process exited with status {proc.returncode}:\n"
                                + self.tail(name))
        for name, task in self.tasks.items():
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise DemoError(f"the {name} stopped" + (f": {error!r}" if error else ""))

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def watch(self) -> None:
        """Fail fast if a part dies, instead of waiting for tasks that cannot run."""
        while True:
            self.check()
            await asyncio.sleep(0.5)

    def stop_all(self, timeout: float = 15.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the run ---------------------------------------------------------------------------
def _load_app(setup: Setup) -> Flowrra:
    for key in [k for k in os.environ if k.startswith("FLOWRRA_")]:
        del os.environ[key]  # the demo never touches the broker of the user's environment
    os.environ.update(setup.env())
    if "flowrra.demo_tasks" in sys.modules:
        raise DemoError("flowrra.demo_tasks was already imported; run the demo in a new process.")
    from flowrra.demo_tasks import app

    return app


async def _submit_and_watch(app: Flowrra, view: DemoView, total: int, timeout: float) -> None:
    from flowrra.events import event_bus

    async def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "task.update":
            view.apply(event.get("task") or {})

    await event_bus.async_subscribe(on_event)
    try:
        started = time.monotonic()
        ids = []
        for name, priority, args in plan(total):
            task_id = await app.submit(name, *args, priority=priority)
            view.expect(task_id, name)
            ids.append(task_id)
        async with asyncio.timeout(timeout):
            records = await asyncio.gather(*(app.wait_for_result(i) for i in ids))
        view.elapsed = time.monotonic() - started
        for record in records:  # events may still be in flight; the results are final
            view.apply(record.to_dict)
    finally:
        await event_bus.unsubscribe(on_event)


async def _start_parts(app: Flowrra, setup: Setup, args: argparse.Namespace, parts: Parts) -> None:
    """Start the worker (and the dashboard), here or as ``flowrra`` subprocesses."""
    if setup.in_process:
        await app.start(io_workers=args.concurrency)
        if setup.ui:
            from flowrra.ui import standalone

            parts.tasks["dashboard"] = asyncio.get_running_loop().create_task(
                standalone.serve(app, args.host, args.port, log_level="warning"))
    else:
        await app.connect()
        worker_args = ["worker", APP_REF, "--concurrency", str(args.concurrency),
                       "--shutdown-timeout", "5"]
        parts.spawn("worker", *worker_args, *(["--with-scheduler"] if setup.ui else []))
        if setup.ui:
            parts.spawn("dashboard", "ui", APP_REF, "--host", args.host, "--port", str(args.port),
                        "--loglevel", "warning")
    if setup.ui:
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(_port_open, args.host, args.port):
            parts.check()
            if time.monotonic() > deadline:
                raise DemoError(f"the dashboard did not start listening on port {args.port}:\n"
                                + parts.tail("dashboard"))
            await asyncio.sleep(0.1)


async def _first(main: asyncio.Future[Any], watcher: asyncio.Task[None]) -> Any:
    """Await ``main`` unless the watcher fails first (a part died)."""
    done, _ = await asyncio.wait({main, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if main not in done:
        main.cancel()
        watcher.result()
    return main.result()


async def _keep_serving(app: Flowrra, setup: Setup, console: Console,
                        watcher: asyncio.Task[None]) -> None:
    """After the batch: schedule recurring work and keep the dashboard up until Ctrl-C."""
    scheduler = app.create_scheduler(check_interval=1.0)
    await scheduler.schedule_interval("fetch_page", 5, args=(0,), priority=5,
                                      description="demo: a page every 5 seconds")
    await scheduler.schedule_cron("nightly_cleanup", "* * * * *", args=(1,), priority=9,
                                  description="demo: cleanup every minute")
    if setup.in_process:
        await scheduler.start()
    else:
        await scheduler.close()  # the worker's scheduler (--with-scheduler) runs them
    console.print("The scheduler now submits fetch_page every 5 s and nightly_cleanup every "
                  "minute. Press Ctrl-C to quit.")
    await watcher  # until a part dies or Ctrl-C


async def _demo(setup: Setup, args: argparse.Namespace, console: Console, parts: Parts) -> None:
    from rich.live import Live

    app = _load_app(setup)
    view = DemoView()
    await _start_parts(app, setup, args, parts)
    if setup.ui:
        console.print(f"[bold]Dashboard[/]: http://{args.host}:{args.port}/flowrra/")
    loop = asyncio.get_running_loop()
    watcher = loop.create_task(parts.watch())
    try:
        with Live(view, console=console, refresh_per_second=8, transient=True):
            work = loop.create_task(_submit_and_watch(app, view, args.tasks, args.timeout))
            await _first(work, watcher)
        console.print(view.table("by task", describe=True))
        console.print(summary(view, view.elapsed))
        if setup.ui:
            await _keep_serving(app, setup, console, watcher)
    except TimeoutError:
        raise DemoError(f"not all tasks finished within {args.timeout:.0f}s; see "
                        f"{parts.logs.get('worker', 'the log above')}") from None
    finally:
        watcher.cancel()
        for task in parts.tasks.values():
            task.cancel()
        await app.stop(wait=False)


def summary(view: DemoView, elapsed: float) -> Table:
    totals = view.totals()
    table = Table(title="summary", title_justify="left")
    table.add_column("status")
    table.add_column("tasks", justify="right")
    table.add_row("total", str(sum(totals.values())))
    for status in STATUSES:
        if totals[status]:
            table.add_row(f"[{STYLES[status]}]{status}[/]", str(totals[status]))
    table.add_row("retries", str(sum(view.retries.values())))
    table.add_row("elapsed", f"{elapsed:.2f}s")
    return table


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flowrra-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    console = Console()
    with _workdir() as workdir:
        try:
            setup = choose_setup(args, workdir)
        except DemoError as exc:
            console.print(f"[red]flowrra demo: error:[/] {exc}")
            return 2
        where = ("this process" if setup.in_process else "a 'flowrra worker' subprocess")
        console.print(f"[bold]Flowrra demo[/]: {args.tasks} tasks, broker "
                      f"{setup.broker_url or 'in-memory'}, worker in {where}. {setup.note}")
        parts = Parts(setup)
        try:
            asyncio.run(_demo(setup, args, console, parts))
        except DemoError as exc:
            console.print(f"[red]flowrra demo: error:[/] {exc}")
            return 1
        except KeyboardInterrupt:
            console.print("stopped")
            return 0 if setup.ui else 130
        finally:
            parts.stop_all()
    return 0
