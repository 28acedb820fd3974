"""Real servers for end-to-end tests: an ASGI server and a ``flowrra worker``, as subprocesses.

A :class:`Stack` is one example app served by its real ASGI server on a free
loopback port, plus one worker process, both pointed at the shared Redis under a
key prefix of their own (``FLOWRRA_BROKER_QUEUE_KEY``; the backend and the event
transport inherit the broker's prefix). Starting waits until the server answers
HTTP and the worker logs that it started, each with a deadline; a process that
dies first fails the test with its log. Stopping sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, unique

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without Flowrra/Django/Channels settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWRRA_", "DJANGO_")) and k != "REDIS_URL"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


class Process:
    """A subprocess whose stdout and stderr go to one log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, tail: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-tail:]

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``ready()`` until true; fail with the log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive():
                pytest.fail(f"{self.name} exited with status {self.proc.returncode} before {what}:\n"
                            f"{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} did not get to {what} within {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def terminate(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful), then SIGKILL to its whole session after ``timeout`` seconds."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: start_new_session
            self.proc.wait(10)


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """The status of ``GET path``, or None if nothing answers yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@dataclass(frozen=True)
class Example:
    """How to serve one example: the server command, the worker's app, the mount prefix."""

    name: str
    server: str  # "uvicorn", "hypercorn" or "daphne"
    asgi: str  # module:attribute of the ASGI application
    worker_app: str  # module:attribute of the Flowrra app, for `flowrra worker`
    task: str  # the name of a task that sleeps a moment and succeeds...
    args: tuple[Any, ...]  # ...when called with these arguments...
    result: Any  # ...returning this
    mount: str = "/flowrra"
    env: dict[str, str] = field(default_factory=dict)
    django: bool = False

    def command(self, port: int) -> list[str]:
        if self.server == "uvicorn":
            return [PY, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                    "--log-level", "warning", "--timeout-graceful-shutdown", "3", self.asgi]
        if self.server == "hypercorn":
            return [PY, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "3",
                    self.asgi]
        if self.server == "daphne":
            return [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), self.asgi]
        raise ValueError(f"unknown server {self.server!r}")


DJANGO_ASGI = "examples.django_project.project.asgi:application"
DJANGO_TASKS = "examples.django_project.project.tasks"

EXAMPLES: dict[str, Example] = {
    "fastapi-uvicorn": Example("fastapi-uvicorn", "uvicorn", "examples.fastapi_app:app",
                               "examples.fastapi_app:flowrra", "examples.add", (2, 3), 5),
    "quart-hypercorn": Example("quart-hypercorn", "hypercorn", "examples.quart_app:app",
                               "examples.quart_app:flowrra", "examples.add", (2, 3), 5),
    "django-daphne": Example("django-daphne", "daphne", DJANGO_ASGI, f"{DJANGO_TASKS}:flowrra",
                             "demo.sleep_then_echo", ("e2e", 0.3), "e2e", django=True),
    "django-uvicorn": Example("django-uvicorn", "uvicorn", DJANGO_ASGI, f"{DJANGO_TASKS}:flowrra",
                              "demo.sleep_then_echo", ("e2e", 0.3), "e2e", django=True),
    # the same under daphne with channels_redis as the Channels layer (settings read REDIS_URL)
    "django-daphne-layer": Example("django-daphne-layer", "daphne", DJANGO_ASGI,
                                   f"{DJANGO_TASKS}:flowrra", "demo.sleep_then_echo",
                                   ("e2e", 0.3), "e2e", env={"REDIS_URL": REDIS_URL}, django=True),
    # the FastAPI example's app mounted at /ops/flowrra (tests/e2e/apps/nested_fastapi.py)
    "fastapi-nested": Example("fastapi-nested", "uvicorn", "tests.e2e.apps.nested_fastapi:app",
                              "examples.fastapi_app:flowrra", "examples.add", (2, 3), 5,
                              mount="/ops/flowrra"),
}


class Stack:
    """One example's server and worker on a key prefix of their own."""

    def __init__(self, example: Example, workdir: Path, *, public: bool = True,
                 concurrency: int = 8, admin: str | None = None) -> None:
        self.example = example
        self.workdir = workdir
        self.key_prefix = unique(f"e2e-{example.name}")
        self.port = free_port()
        self.public = public
        self.concurrency = concurrency
        self.admin = admin
        self.server: Process | None = None
        self.worker: Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"{self.base_url}{self.example.mount}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.example.mount}/ws"

    def env(self) -> dict[str, str]:
        extra = {"FLOWRRA_BROKER_URL": REDIS_URL, "FLOWRRA_BROKER_QUEUE_KEY": self.key_prefix,
                 **self.example.env}
        if self.example.django:
            extra["FLOWRRA_EXAMPLE_DB"] = str(self.workdir / "django.sqlite3")
            if self.public:
                extra["FLOWRRA_UI_PUBLIC"] = "1"
            if self.admin:
                extra["FLOWRRA_EXAMPLE_ADMIN"] = self.admin
        return clean_env(**extra)

    def start(self, timeout: float = 45.0) -> Stack:
        env = self.env()
        self.worker = Process(f"worker of {self.example.name}",
                              [PY, "-m", "flowrra", "worker", self.example.worker_app,
                               "--concurrency", str(self.concurrency), "--cpu-workers", "1",
                               "--loglevel", "info", "--shutdown-timeout", "3"],
                              env, self.workdir / "worker.log")
        self.server = Process(f"{self.example.server} serving {self.example.name}",
                              self.example.command(self.port), env, self.workdir / "server.log")
        health = f"{self.example.mount}/api/health"
        # 401/403 count as up: the staff-only Django example refuses anonymous requests
        self.server.wait_for(lambda: http_status(self.port, health) is not None,
                             f"answering GET {health} on port {self.port}", timeout)
        worker = self.worker
        self.worker.wait_for(lambda: f"started (pid {worker.pid})" in worker.output(100_000),
                             "logging that it started", timeout)
        return self

    def stop(self) -> None:
        procs = [proc for proc in (self.server, self.worker) if proc is not None]
        for proc in procs:  # both at once: each takes a moment to stop gracefully
            proc.terminate()
        for proc in procs:
            proc.stop()

    def logs(self) -> str:
        parts = []
        for proc in (self.server, self.worker):
            if proc is not None:
                parts.append(f"--- {proc.name} ---\n{proc.output()}")
        return "\n".join(parts)
