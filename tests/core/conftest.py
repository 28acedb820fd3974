"""Fixtures for the core tests: in-memory apps that are always stopped, and event collectors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from flowrra import Config, ExecutorConfig, Flowrra
from flowrra.backends import ResultBackend
from flowrra.brokers import Broker
from flowrra.events import event_bus

AppFactory = Callable[..., Awaitable[Flowrra]]


@pytest.fixture
async def make_app() -> AsyncIterator[AppFactory]:
    """``await make_app(io_workers=1, ...)``: a fresh in-memory app, started unless start=False.

    Every app made here is stopped at teardown (with a short timeout so a test that
    leaves a task blocked cannot hang the suite).
    """
    apps: list[Flowrra] = []

    async def factory(*, start: bool = True, backend: ResultBackend | None = None,
                      broker: Broker | None = None, **executor: Any) -> Flowrra:
        options = {"io_workers": 4, "cpu_workers": 2, "retry_delay": 0.01, **executor}
        app = Flowrra(Config(executor=ExecutorConfig(**options)), broker=broker, backend=backend)
        apps.append(app)
        if start:
            await app.start()
        return app

    yield factory
    for app in apps:
        await app.stop(timeout=2.0)


@pytest.fixture
async def app(make_app: AppFactory) -> Flowrra:
    return await make_app()


class Collector:
    """An event-bus subscriber that records what it receives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def updates(self, task_id: str) -> list[dict[str, Any]]:
        return [e["task"] for e in self.events
                if e.get("type") == "task.update" and e["task"]["task_id"] == task_id]

    def statuses(self, task_id: str) -> list[str]:
        return [t["status"] for t in self.updates(task_id)]

    def task_ids(self) -> set[str]:
        return {e["task"]["task_id"] for e in self.events if e.get("type") == "task.update"}


@pytest.fixture
async def events() -> AsyncIterator[Collector]:
    """A collector subscribed to the global ``event_bus`` for the duration of one test."""
    collector = Collector()
    event_bus.subscribe(collector)
    yield collector
    await event_bus.unsubscribe(collector)


class Gate:
    """Lets a test hold tasks at a known point and count how many are there at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.active = 0
        self.max_active = 0
        self.started: list[Any] = []
        self.finished: list[Any] = []

    async def hold(self, tag: Any = None) -> Any:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.started.append(tag)
        try:
            await self.open.wait()
        finally:
            self.active -= 1
        self.finished.append(tag)
        return tag


@pytest.fixture
def gate() -> Gate:
    return Gate()
