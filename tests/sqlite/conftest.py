"""Helpers for the SQLite tests: URLs on fresh files and child processes sharing them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flowrra.db'}"  # tmp_path is absolute: sqlite:////...


class Child:
    """A ``tests.sqlite._child`` process; its stdout is one JSON object per line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self, timeout: float = 60.0) -> dict:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise AssertionError(f"child exited (status {await self.proc.wait()}) without output")
        return json.loads(raw)

    async def finish(self, timeout: float = 60.0) -> list[dict]:
        assert self.proc.stdout is not None
        out, _ = await asyncio.wait_for(self.proc.communicate(), timeout)
        assert self.proc.returncode == 0, f"child failed with status {self.proc.returncode}"
        return [json.loads(line) for line in out.decode().splitlines() if line.strip()]

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def spawn():
    """``await spawn(command, url, *args)`` starts a child; leftovers are killed at the end."""
    children: list[Child] = []

    async def start(*args: str) -> Child:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                         os.environ.get("PYTHONPATH")])))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.sqlite._child", *args, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE)
        children.append(Child(proc))
        return children[-1]

    yield start
    for child in children:
        child.kill()
        await child.proc.wait()
