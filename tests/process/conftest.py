"""Helpers for multi-process tests: worker subprocesses, private Redis servers, producers.

Every test gets its own broker: a SQLite file under tmp_path, or a ``redis-server``
of its own on a spare loopback port (so parallel runs never share keys, and the
restart test can stop it). Durable brokers are written by another part of the
project; until a broker module exists, its parameter is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from flowrra import Flowrra
from flowrra.events import event_bus
from tests.apps.procapp import make_app
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
APP_REF = "tests.apps.procapp:app"
DURABLE_MODULES = {
    "sqlite": ("flowrra.brokers.sqlite", "flowrra.backends.sqlite"),
    "redis": ("flowrra.brokers.redis", "flowrra.backends.redis"),
}


def require_durable(kind: str) -> None:
    """Skip while the broker or backend of ``kind`` is not written yet."""
    for module in DURABLE_MODULES[kind]:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} does not exist yet")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server owned by one test, on a spare port, with its data under tmp."""

    def __init__(self, directory: Path, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (bash scripts/test installs it)")
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.directory), "--save", "", "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"),
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _redis_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log")
                pytest.fail(f"redis-server on port {self.port} did not start:\n"
                            f"{log.read_text() if log.exists() else ''}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def broker_url(request, tmp_path) -> Iterator[str]:
    require_durable(request.param)
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def side_dir(tmp_path) -> Path:
    path = tmp_path / "side"
    path.mkdir()
    return path


class WorkerProcess:
    """One ``flowrra worker`` subprocess; its combined output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    async def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if not self.alive() and text not in self.output():
                pytest.fail(f"worker {self.pid} exited ({self.proc.returncode}) before "
                            f"logging {text!r}:\n{self.output()}")
            return text in self.output()

        await wait_until(seen, timeout=timeout, interval=0.05, message=f"worker log: {text!r}")

    async def wait_started(self, timeout: float = 30.0) -> None:
        await self.wait_for_output(f"started (pid {self.pid})", timeout)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        await wait_until(lambda: not self.alive(), timeout=timeout, interval=0.05,
                         message=f"worker {self.pid} to exit; log:\n{self.output()}")
        return self.proc.returncode


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(tmp_path) -> Iterator[StartWorker]:
    """``start_worker(url, side_dir, visibility_timeout=2, concurrency=4, shutdown_timeout=30)``."""
    started: list[WorkerProcess] = []

    def start(url: str, side: Path, *, visibility_timeout: float = 30.0, concurrency: int = 4,
              shutdown_timeout: float = 30.0, command: str = "worker",
              scheduler_url: str | None = None) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
        env.update(FLOWRRA_BROKER_URL=url, FLOWRRA_BROKER_VISIBILITY_TIMEOUT=str(visibility_timeout),
                   FLOWRRA_TEST_SIDE_DIR=str(side), PYTHONUNBUFFERED="1")
        if scheduler_url:
            env["FLOWRRA_SCHEDULER_DATABASE_URL"] = scheduler_url
        args = [sys.executable, "-m", "flowrra", command, APP_REF, "--loglevel", "info"]
        if command == "worker":
            args += ["--concurrency", str(concurrency), "--cpu-workers", "1",
                     "--shutdown-timeout", str(shutdown_timeout)]
        worker = WorkerProcess(args, env, tmp_path / f"{command}-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
async def make_producer() -> AsyncIterator[Callable[..., Flowrra]]:
    """``make_producer(url, side_dir, visibility_timeout)``: a connected app that only submits."""
    apps: list[Flowrra] = []

    def make(url: str, side: Path, visibility_timeout: float = 30.0,
             scheduler_url: str | None = None) -> Flowrra:
        app = make_app(url, visibility_timeout, side, scheduler_url)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.stop()
        event_bus.remove_relay(app._relay)


async def wait_all_success(app: Flowrra, ids: list[str], timeout: float) -> None:
    """Every id has a success record (checked through the result API) before the deadline."""
    remaining = set(ids)

    async def done() -> bool:
        for task_id in list(remaining):
            record = await app.get_result(task_id)
            if record is not None and record.is_success:
                remaining.discard(task_id)
        return not remaining

    await wait_until(done, timeout=timeout, interval=0.1, message=f"all {len(ids)} tasks to succeed")
