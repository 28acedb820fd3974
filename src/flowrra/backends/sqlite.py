"""SQLite result backend: one row per task id, in the same file as the SQLite broker by default.

Each row keeps the JSON record with its status, name, last update and expiry;
``(status, updated_at)`` is indexed, so history by status (newest first, paged)
and counts by status are served from the index, never by scanning records.

``wait_for`` in another process: completions stored in this process wake
waiters at once (:meth:`_notify`); for the others, a single poller per backend
re-reads the waited-for rows whenever the file watcher of
:mod:`flowrra.sqlite_db` sees another process commit (within about 2 ms while
busy, 25 ms when quiet), and at least every second regardless.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from flowrra.backends.base import ResultBackend, status_value
from flowrra.serialization import dumps, loads
from flowrra.sqlite_db import SQLiteDatabase, parse_sqlite_url
from flowrra.task import TERMINAL_STATUSES, TaskResult, TaskStatus

TOPIC = "results"
_RECHECK = 1.0
_PRUNE_EVERY = 5.0
_FINAL = tuple(s.value for s in TERMINAL_STATUSES)
_ALIVE = "(expires_at IS NULL OR expires_at > ?)"


def _store(conn: sqlite3.Connection, row: tuple[Any, ...], prune_before: float | None) -> None:
    if prune_before is not None:
        conn.execute("DELETE FROM flowrra_results WHERE expires_at IS NOT NULL AND expires_at <= ?",
                     (prune_before,))
    conn.execute(
        "INSERT INTO flowrra_results (task_id, task_name, status, updated_at, expires_at, record) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET task_name = excluded.task_name, "
        "status = excluded.status, updated_at = excluded.updated_at, "
        "expires_at = excluded.expires_at, record = excluded.record", row)


def _get(conn: sqlite3.Connection, task_id: str, now: float) -> str | None:
    found = conn.execute(f"SELECT record FROM flowrra_results WHERE task_id = ? AND {_ALIVE}",
                         (task_id, now)).fetchone()
    return found[0] if found else None


def _finished(conn: sqlite3.Connection, task_ids: list[str], now: float) -> list[str]:
    marks = ", ".join("?" * len(task_ids))
    return [row[0] for row in conn.execute(
        f"SELECT record FROM flowrra_results WHERE task_id IN ({marks}) "
        f"AND status IN ({', '.join('?' * len(_FINAL))}) AND {_ALIVE}",
        (*task_ids, *_FINAL, now))]


def _list(conn: sqlite3.Connection, status: str, limit: int, offset: int, now: float) -> list[str]:
    return [row[0] for row in conn.execute(
        f"SELECT record FROM flowrra_results WHERE status = ? AND {_ALIVE} "
        "ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?", (status, now, limit, offset))]


def _count(conn: sqlite3.Connection, now: float) -> dict[str, int]:
    counts = {s.value: 0 for s in TaskStatus}
    for status, n in conn.execute("SELECT status, count(*) FROM flowrra_results GROUP BY status"):
        counts[status] = counts.get(status, 0) + n
    # Expired rows not yet pruned: found through the expiry index, not by scanning.
    for status, n in conn.execute(
            "SELECT status, count(*) FROM flowrra_results WHERE expires_at IS NOT NULL "
            "AND expires_at <= ? GROUP BY status", (now,)):
        counts[status] -= n
    return counts


def _search(conn: sqlite3.Connection, query: str, limit: int, now: float) -> list[str]:
    pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [row[0] for row in conn.execute(
        "SELECT record FROM flowrra_results WHERE (task_id LIKE ? ESCAPE '\\' "
        f"OR task_name LIKE ? ESCAPE '\\') AND {_ALIVE} ORDER BY updated_at DESC LIMIT ?",
        (pattern + "%", "%" + pattern + "%", now, limit))]


def _delete(conn: sqlite3.Connection, task_id: str) -> int:
    return conn.execute("DELETE FROM flowrra_results WHERE task_id = ?", (task_id,)).rowcount


def _clear(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM flowrra_results")


class SQLiteBackend(ResultBackend):
    """Task records in a SQLite file, shared by every process on the machine that opens it."""

    shared = True
    schemes = ("sqlite",)

    def __init__(self, url: str = "sqlite:///flowrra.db", *, ttl: float | None = None,
                 lock_timeout: float = 30.0, max_connections: int | None = None,
                 socket_timeout: float | None = None, retry_on_timeout: bool | None = None) -> None:
        # The network options are accepted for a uniform configuration and ignored.
        super().__init__(ttl=ttl)
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be greater than zero (or None for no expiry), got {ttl}")
        parse_sqlite_url(url)
        self.url = url
        self.lock_timeout = lock_timeout
        self._db: SQLiteDatabase | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None
        self._last_stamp = 0.0
        self._next_prune = 0.0

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.url!r})"

    async def connect(self) -> None:
        if self._db is not None:
            return
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._db is None:
                db = SQLiteDatabase.acquire(self.url, lock_timeout=self.lock_timeout)
                try:
                    await db.ready()
                except BaseException:
                    await db.release()
                    raise
                self._db = db

    async def _conn(self) -> SQLiteDatabase:
        if self._db is None:
            await self.connect()
        assert self._db is not None
        return self._db

    async def close(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        db, self._db = self._db, None
        if db is not None:
            await db.release()

    def _stamp(self) -> float:
        """Wall-clock time, strictly increasing within this process (newest-first order)."""
        now = time.time()
        if now <= self._last_stamp:
            now = self._last_stamp + 1e-6
        self._last_stamp = now
        return now

    async def store(self, result: TaskResult) -> None:
        db = await self._conn()
        now = self._stamp()
        prune = None
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + _PRUNE_EVERY
            prune = now
        final = result.status in TERMINAL_STATUSES
        row = (result.task_id, result.task_name, result.status.value, now,
               None if self.ttl is None else now + self.ttl, dumps(result.to_dict))
        await db.write(_store, row, prune, topic=TOPIC if final else None)
        if final:
            self._notify(result.copy())

    async def get(self, task_id: str) -> TaskResult | None:
        db = await self._conn()
        found = await db.read(_get, task_id, time.time())
        return None if found is None else TaskResult.from_dict(loads(found))

    async def delete(self, task_id: str) -> bool:
        db = await self._conn()
        return await db.write(_delete, task_id) > 0

    async def clear(self) -> None:
        db = await self._conn()
        await db.write(_clear)

    async def list_by_status(self, status: TaskStatus | str, limit: int | None = None,
                             offset: int = 0) -> list[TaskResult]:
        wanted = status_value(status)
        db = await self._conn()
        rows = await db.read(_list, wanted, -1 if limit is None else limit, offset, time.time())
        return [TaskResult.from_dict(loads(row)) for row in rows]

    async def count_by_status(self) -> dict[str, int]:
        db = await self._conn()
        return await db.read(_count, time.time())

    async def search(self, query: str, limit: int = 50) -> list[TaskResult]:
        query = query.strip().lower()
        if not query:
            return []
        exact = await self.get(query)
        if exact is not None:
            return [exact]
        db = await self._conn()
        rows = await db.read(_search, query, limit, time.time())
        return [TaskResult.from_dict(loads(row)) for row in rows]

    # -- waiting across processes --------------------------------------------------------
    async def _watch(self, task_id: str) -> None:
        await self._conn()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """While anyone waits, re-read waited-for rows whenever the file changes."""
        db = await self._conn()
        watch = db.watch()
        while self._waiters:
            seen = watch.version(TOPIC)
            try:
                rows = await db.read(_finished, list(self._waiters), time.time())
            except Exception:
                rows = []  # the waiters' own timeouts bound how long a broken file is retried
            for row in rows:
                self._notify(TaskResult.from_dict(loads(row)))
            await watch.wait((TOPIC,), seen, _RECHECK)
