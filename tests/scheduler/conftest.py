"""Fixtures for the scheduler tests: stores on real databases, a manual clock, a fake app.

Every PostgreSQL store lives in its own schema and every MariaDB store in its
own database; both are dropped when the test ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowrra.scheduler import MemoryScheduleStore, ScheduleStore, get_scheduler_backend

POSTGRES_URL = os.environ.get(
    "FLOWRRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FLOWRRA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when


@dataclass
class FakeApp:
    """Records submissions; used only where no task has to run."""

    submitted: list[dict[str, Any]] = field(default_factory=list)
    fail: int = 0

    async def apply_async(self, name: str, args: Any = (), kwargs: Any = None,
                          **options: Any) -> str:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        task_id = options.get("task_id") or f"manual-{len(self.submitted)}"
        self.submitted.append({"name": name, "args": args, "kwargs": kwargs, **options,
                               "task_id": task_id})
        return task_id

    @property
    def ids(self) -> list[str]:
        return [s["task_id"] for s in self.submitted]


def _mysql_parts(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": parts.username or "root", "password": parts.password or ""}


async def _mysql_admin(url: str, statement: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(**_mysql_parts(url), autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement)
    finally:
        conn.close()


async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class StoreSpace:
    """An isolated place (file, schema or database) for stores of one kind."""

    def __init__(self, kind: str, tmp_path: Any) -> None:
        self.kind = kind
        self.name = f"fs_{uuid.uuid4().hex[:12]}"
        self.tmp_path = tmp_path
        self.stores: list[ScheduleStore] = []
        self._memory = MemoryScheduleStore()

    @property
    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp_path / (self.name + '.db')}"
        if self.kind == "postgresql":
            return f"{POSTGRES_URL}?schema={self.name}"
        if self.kind == "mysql":
            base = urlsplit(MYSQL_URL)
            return f"{base.scheme}://{base.netloc}/{self.name}"
        return "memory://"

    async def setup(self) -> None:
        if self.kind == "mysql":
            await _mysql_admin(MYSQL_URL, f"CREATE DATABASE {self.name}")

    def new_store(self) -> ScheduleStore:
        """Another store instance on the same data (another process's view)."""
        store = self._memory if self.kind == "memory" else get_scheduler_backend(self.url)
        self.stores.append(store)
        return store

    async def teardown(self) -> None:
        for store in self.stores:
            await store.close()
        if self.kind == "postgresql":
            await _pg_admin(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        elif self.kind == "mysql":
            await _mysql_admin(MYSQL_URL, f"DROP DATABASE IF EXISTS {self.name}")


STORE_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


@pytest.fixture(params=STORE_KINDS)
async def space(request, tmp_path) -> AsyncIterator[StoreSpace]:
    space = StoreSpace(request.param, tmp_path)
    await space.setup()
    try:
        yield space
    finally:
        await space.teardown()


@pytest.fixture
async def store(space: StoreSpace) -> ScheduleStore:
    store = space.new_store()
    await store.open()
    return store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake_app() -> FakeApp:
    return FakeApp()


@pytest.fixture
async def spaces(tmp_path) -> AsyncIterator[Callable[[str], Any]]:
    created: list[StoreSpace] = []

    async def make(kind: str) -> StoreSpace:
        space = StoreSpace(kind, tmp_path)
        await space.setup()
        created.append(space)
        return space

    try:
        yield make
    finally:
        for space in created:
            await space.teardown()
