"""A WebSocket client that never reads costs the server bounded memory, and nobody else suffers.

Each example server gets a socket that completes the handshake and then never
reads again. The test then floods the stack with a few thousand tasks whose
frames add up to about twice the memory bound (so a server that buffered every
frame for the stuck client would fail), while a sampler thread records the
resident memory of the server's process tree. Afterwards the server must still
answer HTTP and stream a new task to a fresh socket, and its peak RSS must have
stayed within ``RSS_BOUND`` of the baseline. The figures are written to
``test-artifacts/slow-client-memory.txt``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from flowrra import Flowrra
from tests.e2e.conftest import ARTIFACTS, producer_for, running_stack
from tests.e2e.servers import Stack
from tests.e2e.sockets import NeverReadingSocket, live_socket, task_frames

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

MiB = 1024 * 1024
RSS_BOUND = 50 * MiB
TASKS = 3000
PAYLOAD = 4096  # characters per string argument


def flood_args(stack: Stack, i: int) -> tuple[Any, ...]:
    """Arguments that make each task's frames about 8 KiB (pending, running) and 16 KiB (success)."""
    if stack.example.task == "examples.add":  # FastAPI / Quart: x + y, after a short sleep
        return (f"{i:08d}".ljust(PAYLOAD, "x"), "y" * PAYLOAD)
    return (f"{i:08d}".ljust(2 * PAYLOAD, "m"), 0.0)  # Django: sleep_then_echo(message, 0)


def frame_bytes_lower_bound() -> int:
    """What the flood's frames carry in arguments and results alone (JSON adds more)."""
    args = 2 * PAYLOAD
    return TASKS * (args + args + (args + args))  # pending, running, success (+ result)


class RssSampler:
    """Samples the resident memory of a process and its children until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module", params=["fastapi-uvicorn", "quart-hypercorn", "django-daphne"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # enough worker slots that the examples' short sleeps do not make the flood slow
    with running_stack(request.param, tmp_path_factory, concurrency=500) as started:
        yield started


async def finished_count(producer: Flowrra) -> int:
    counts = await producer.backend.count_by_status()
    return counts.get("success", 0) + counts.get("failed", 0)


async def wait_finished(producer: Flowrra, target: int, stack: Stack, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while (done := await finished_count(producer)) < target:
        if time.monotonic() > deadline:
            pytest.fail(f"only {done} of {target} tasks finished within {timeout}s\n{stack.logs()}")
        await asyncio.sleep(0.2)


async def one_task_streams(stack: Stack, producer: Flowrra, *, strict: bool = True) -> None:
    """A fresh socket sees a new task pending -> running -> success.

    Not ``strict``: right after the flood the server may still be catching up, and
    a stream may then coalesce states (it keeps the latest per task), so only the
    order and the final success are required.
    """
    async with live_socket(stack.ws_url) as ws:
        task_id = await producer.submit(stack.example.task, *stack.example.args)
        frames = await task_frames(ws, task_id, context=stack.logs())
    states = [f["status"] for f in frames]
    expected = ["pending", "running", "success"]
    if strict:
        assert states == expected, f"{stack.example.name}: {states}"
    else:
        in_order = set(states) <= set(expected) and states == sorted(set(states), key=expected.index)
        assert in_order and states[-1] == "success", (
            f"{stack.example.name}: {states}")


def record(stack: Stack, baseline: int, peak: int, after: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "slow-client-memory.txt").open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {stack.example.name}: {TASKS} tasks, "
                  f"~{frame_bytes_lower_bound() / MiB:.0f} MiB of frames; server RSS baseline "
                  f"{baseline / MiB:.1f} MiB, peak +{(peak - baseline) / MiB:.1f} MiB, "
                  f"after +{(after - baseline) / MiB:.1f} MiB (bound +{RSS_BOUND / MiB:.0f} MiB)\n")


async def test_never_reading_client_costs_bounded_memory(stack: Stack) -> None:
    assert frame_bytes_lower_bound() > 1.8 * RSS_BOUND, "the flood must be able to break the bound"
    assert stack.server is not None
    async with producer_for(stack) as producer:
        await one_task_streams(stack, producer)  # warm the server up before the baseline
        stuck = NeverReadingSocket(stack.port, f"{stack.example.mount}/ws")
        try:
            sampler = RssSampler(stack.server.pid)
            baseline = sampler.rss()
            start = await finished_count(producer)
            with sampler:
                for first in range(0, TASKS, 500):
                    calls = [(stack.example.task, flood_args(stack, i), {})
                             for i in range(first, min(first + 500, TASKS))]
                    await producer.submit_many(calls)
                await wait_finished(producer, start + TASKS, stack)
                # the server still answers HTTP and other sockets while the stuck one stays open
                async with httpx.AsyncClient(base_url=stack.ui_url, timeout=15) as client:
                    response = await client.get("/api/stats")
                assert response.status_code == 200, response.text
                await one_task_streams(stack, producer, strict=False)
            after = sampler.rss()
        finally:
            stuck.close()
    record(stack, baseline, sampler.peak, after)
    growth = sampler.peak - baseline
    assert growth < RSS_BOUND, (
        f"{stack.example.name}: server RSS grew by {growth / MiB:.1f} MiB (baseline "
        f"{baseline / MiB:.1f} MiB) while a client did not read; bound {RSS_BOUND / MiB:.0f} MiB")
