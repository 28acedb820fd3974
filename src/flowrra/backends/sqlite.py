"""SQLite result backend: one row per task id, in the same file as the SQLite broker by default.

Each row keeps the JSON record with its status, name, last update and expiry;
``(status, updated_at)`` is indexed, so history by status (newest first, paged)
and counts by status are served from the index, never by scanning records.

``wait_for`` in another process: completions stored in this process wake
waiters at once (:meth:`_notify`); for the others, a single poller per backend
reads which records became final since its last look (final records are
numbered in commit order, ``done_seq``, so this is an index range read however
many tasks are awaited) whenever the file watcher of
:mod:`flowrra.sqlite_db` sees another process commit (within 2 ms while busy,
25-100 ms after a quiet spell), and at least every second regardless.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any
from urllib.parse import quote

from flowrra.backends.base import ResultBackend, status_value
from flowrra.brokers.batching import Batcher
from flowrra.serialization import dumps, loads
from flowrra.sqlite_db import SQLiteDatabase, insert_rows, parse_sqlite_url
from flowrra.task import TERMINAL_STATUSES, TaskResult, TaskStatus

TOPIC = "results"
_RECHECK = 1.0
_PRUNE_EVERY = 5.0
_ALIVE = "(expires_at IS NULL OR expires_at > ?)"


_UPSERT_HEAD = ("INSERT INTO flowrra_results (task_id, task_name, status, updated_at, expires_at, "
                "done_seq, record)")
_UPSERT_TAIL = (" ON CONFLICT (task_id) DO UPDATE SET task_name = excluded.task_name, "
                "status = excluded.status, updated_at = excluded.updated_at, "
                "expires_at = excluded.expires_at, done_seq = excluded.done_seq, "
                "record = excluded.record")


def _store_many(conn: sqlite3.Connection, rows: list[list[Any]], prune_before: float | None) -> None:
    """Upsert records; final ones get the next ``done_seq`` numbers, in commit order."""
    if prune_before is not None:
        conn.execute("DELETE FROM flowrra_results WHERE expires_at IS NOT NULL AND expires_at <= ?",
                     (prune_before,))
    finals = [row for row in rows if row[5]]
    if finals:
        last = conn.execute("UPDATE flowrra_counters SET value = value + ? WHERE name = 'results_done' "
                            "RETURNING value", (len(finals),)).fetchall()[0][0]
        for number, row in enumerate(finals, last - len(finals) + 1):
            row[5] = number
    insert_rows(conn, _UPSERT_HEAD, rows, _UPSERT_TAIL)


def _get(conn: sqlite3.Connection, task_id: str, now: float) -> str | None:
    found = conn.execute(f"SELECT record FROM flowrra_results WHERE task_id = ? AND {_ALIVE}",
                         (task_id, now)).fetchone()
    return found[0] if found else None


def _done_mark(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT value FROM flowrra_counters WHERE name = 'results_done'").fetchone()[0]


def _done_since(conn: sqlite3.Connection, mark: int, wanted: frozenset[str]) -> tuple[int, list[str]]:
    """Records of ``wanted`` ids that became final after ``mark``, and the new mark.

    The ids of every record finished since ``mark`` come back folded into one row
    (one sqlite3 step); only the wanted records are then read.
    """
    last, folded = conn.execute(
        "SELECT max(done_seq), group_concat(task_id, char(31)) FROM flowrra_results "
        "WHERE done_seq > ?", (mark,)).fetchone()
    if last is None:
        return mark, []
    hits = [task_id for task_id in folded.split("\x1f") if task_id in wanted]
    records: list[str] = []
    for start in range(0, len(hits), 128):
        part = hits[start:start + 128]
        records += [row[0] for row in conn.execute(
            f"SELECT record FROM flowrra_results WHERE task_id IN ({', '.join('?' * len(part))})",
            part)]
    return last, records


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


def _prune(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("DELETE FROM flowrra_results WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))


def _delete(conn: sqlite3.Connection, task_id: str) -> int:
    return conn.execute("DELETE FROM flowrra_results WHERE task_id = ?", (task_id,)).rowcount


def _clear(conn: sqlite3.Connection) -> int:
    return conn.execute("DELETE FROM flowrra_results").rowcount


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
        self._stores: Batcher[list[Any], None] = Batcher(self._flush_stores, name="sqlite-store")
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
                self._db = await SQLiteDatabase.open(self.url, lock_timeout=self.lock_timeout)

    async def _conn(self) -> SQLiteDatabase:
        if self._db is None:
            await self.connect()
        assert self._db is not None
        return self._db

    async def close(self) -> None:
        await self._stores.close()
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

    async def store_record(self, result: TaskResult, data: dict[str, Any] | None = None) -> None:
        await self._conn()
        now = self._stamp()
        final = result.status in TERMINAL_STATUSES
        await self._stores.submit([result.task_id, result.task_name, result.status.value, now,
                                   None if self.ttl is None else now + self.ttl, final,
                                   dumps(result.to_dict if data is None else data)])
        if final:
            self._notify(result.copy())

    async def _flush_stores(self, rows: list[list[Any]]) -> None:
        db = await self._conn()
        prune = None
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + _PRUNE_EVERY
            prune = time.time()
        final = any(row[5] for row in rows)
        await db.write(_store_many, rows, prune, topic=TOPIC if final else None)

    async def get(self, task_id: str) -> TaskResult | None:
        db = await self._conn()
        found = await db.read(_get, task_id, time.time())
        return None if found is None else TaskResult.from_dict(loads(found))

    async def delete(self, task_id: str) -> bool:
        db = await self._conn()
        return await db.write(_delete, task_id) > 0

    async def clear(self) -> int:
        db = await self._conn()
        return await db.write(_clear)

    def __len__(self) -> int:
        """Counted on a short-lived read-only connection, so it works outside the loop."""
        path, _params = parse_sqlite_url(self.url)
        if path == ":memory:" or not path:
            raise TypeError("len() is not supported for an in-memory SQLiteBackend: "
                            "use 'await backend.count()'")
        try:
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
        except sqlite3.OperationalError:  # no file yet: nothing stored
            return 0
        try:
            return sum(_count(conn, time.time()).values())
        except sqlite3.OperationalError:  # no table yet
            return 0
        finally:
            conn.close()

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
        if self._poller is None or self._poller.done():
            db = await self._conn()
            mark = await db.read(_done_mark)  # read before the caller's get(): nothing slips by
            if self._poller is None or self._poller.done():
                self._poller = asyncio.get_running_loop().create_task(self._poll(db, mark))

    async def _poll(self, db: SQLiteDatabase, mark: int) -> None:
        """While anyone waits, read the records finished since ``mark`` whenever the file changes."""
        watch = db.watch()
        while self._waiters:
            seen = watch.version(TOPIC)
            try:
                mark, rows = await db.read(_done_since, mark, frozenset(self._waiters))
            except Exception:
                rows = []  # the waiters' own timeouts bound how long a broken file is retried
            for row in rows:
                self._notify(TaskResult.from_dict(loads(row)))
            await watch.wait((TOPIC,), seen, _RECHECK)
