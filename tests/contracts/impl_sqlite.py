"""SQLite implementations under contract: instances made from one path share one database file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from flowrra.backends.sqlite import SQLiteBackend
from flowrra.brokers.sqlite import SQLiteBroker
from flowrra.transports.sqlite import SQLiteTransport
from tests.conftest import waiting_callers


def sqlite_url(path: Path) -> str:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve() / 'flowrra.db'}"  # absolute: sqlite:////...


@contextlib.asynccontextmanager
async def sqlite_broker(path: Path, **options) -> AsyncIterator[SQLiteBroker]:
    broker = SQLiteBroker(sqlite_url(path), **options)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


@contextlib.asynccontextmanager
async def sqlite_backend(path: Path, **options) -> AsyncIterator[SQLiteBackend]:
    backend = SQLiteBackend(sqlite_url(path), **options)
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def sqlite_transports(path: Path) -> AsyncIterator[Callable[[], SQLiteTransport]]:
    url = sqlite_url(path)
    made: list[SQLiteTransport] = []

    def new() -> SQLiteTransport:
        made.append(SQLiteTransport(url))
        return made[-1]

    try:
        yield new
    finally:
        for transport in made:
            await transport.close()


async def inject_raw(broker: SQLiteBroker, task_id: str, raw: str, queue: str) -> None:
    """Write an undecodable row from another connection, as a foreign process would."""
    path = broker.url[len("sqlite:///"):]

    def write() -> None:
        conn = sqlite3.connect(path, timeout=10)
        try:
            with conn:
                conn.execute("INSERT INTO flowrra_tasks (id, queue, priority, state, ready_at, payload) "
                             "VALUES (?, ?, 0, 0, ?, ?)", (task_id, queue, time.time(), raw))
        finally:
            conn.close()

    await asyncio.to_thread(write)


BROKERS = {"sqlite": sqlite_broker}
BACKENDS = {"sqlite": sqlite_backend}
TRANSPORTS = {"sqlite": sqlite_transports}
INJECTORS = {"sqlite": inject_raw}
WAITING = {"sqlite": lambda broker: waiting_callers(broker._consumers) > 0}
