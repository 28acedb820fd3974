"""SQLite schedule store (standard library ``sqlite3`` on a private thread).

Several processes on one machine may share the file: the database's write
lock makes the conditional updates atomic, and WAL mode lets readers run
alongside the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ._sql import SQLScheduleStore
from .models import utc

__all__ = ["SQLiteScheduleStore", "sqlite_path_from_url"]

T = TypeVar("T")
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def sqlite_path_from_url(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    rest = url[len("sqlite://"):].split("?", 1)[0]
    if rest in ("", "/", "/:memory:", ":memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ValueError(
            f"invalid SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////absolute.db"
        )
    return rest[1:]


class _SQLiteSession:
    def __init__(self, store: SQLiteScheduleStore) -> None:
        self._store = store

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, tuple(params)).rowcount

        return await self._store._call(run)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, tuple(params)).fetchall()

        return await self._store._call(run)


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch a file to WAL, retrying while another connection is switching it too.

    Changing the journal mode of a new file can fail with "database is locked" at
    once, without SQLite's busy handler, when several processes open it together.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class SQLiteScheduleStore(SQLScheduleStore):
    """Schedules in an SQLite file (``":memory:"`` keeps them in this store only)."""

    kind = "sqlite"
    placeholder = "?"
    key_type = "TEXT"
    ts_type = "TEXT"
    float_type = "REAL"

    def __init__(
        self, path: str | Path = "flowrra_schedules.db", table_prefix: str = "flowrra_",
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(table_prefix)
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteScheduleStore:
        return cls(sqlite_path_from_url(url), **kwargs)

    def __repr__(self) -> str:
        return f"SQLiteScheduleStore({self.path!r})"

    # -- values ----------------------------------------------------------------
    def _to_db(self, dt: datetime | None) -> Any:
        return None if dt is None else utc(dt).strftime(_TS_FORMAT)

    # -- connection ----------------------------------------------------------
    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None or self._executor is None:
            raise RuntimeError("SQLite schedule store is not open")
        conn = self._conn
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    async def _connect(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowrra-schedules")

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
            if self.path != ":memory:":
                _enable_wal(conn, self.busy_timeout)
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn

        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, connect)

    async def _disconnect(self) -> None:
        conn, executor = self._conn, self._executor
        self._conn = self._executor = None
        if conn is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=False)

    @asynccontextmanager
    async def _session(self, transaction: bool = False) -> AsyncIterator[_SQLiteSession]:
        async with self._lock:
            session = _SQLiteSession(self)
            if not transaction:
                yield session
                return
            await session.execute("BEGIN IMMEDIATE")
            try:
                yield session
            except BaseException:
                await session.execute("ROLLBACK")
                raise
            await session.execute("COMMIT")

    def _migration_session(self):  # type: ignore[no-untyped-def]
        # BEGIN IMMEDIATE takes the database write lock: other processes wait.
        return self._session(transaction=True)
