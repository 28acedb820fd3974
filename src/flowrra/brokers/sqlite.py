"""SQLite broker: durable delivery on one machine with no server; several processes share a file.

Every queued task is a row of ``flowrra_tasks`` with its queue, priority, a
sequence number (FIFO among equal priorities), a state (ready, delayed, leased)
and ``ready_at`` — the eta of a delayed task or the lease deadline of a claimed
one. A task is claimable when it is ready, or when its ``ready_at`` has passed
(a due delayed task, or the expired lease of a worker that died), so one index
on ``ready_at`` serves both delays and crash recovery. Claims run in a
``BEGIN IMMEDIATE`` transaction and take the lowest (priority, sequence) due
tasks of the requested queues, several at once for several waiting callers.
Times are wall-clock epoch seconds, which every process on the machine shares.

Waking consumers: a local ``enqueue`` wakes this process's waiting consumers at
once; another process's commit is noticed by the file watcher of
:mod:`flowrra.sqlite_db` within about 2 ms while the queue is busy and about
25 ms after a second of quiet (plus the claim itself, well under a millisecond).
An idle consumer never writes to the file: it reads a cheap probe first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flowrra.brokers.base import Broker, DeadLetter, retry_dead_letter_task
from flowrra.serialization import dumps, loads
from flowrra.sqlite_db import SQLiteDatabase, parse_sqlite_url
from flowrra.task import Task
from flowrra.transports.base import EventTransport

logger = logging.getLogger(__name__)

READY, DELAYED, LEASED = 0, 1, 2
TOPIC = "tasks"
_IDLE_RECHECK = 1.0  # seconds an idle consumer waits before re-probing on its own
_kick_ids = itertools.count()

_INSERT = ("INSERT INTO flowrra_tasks (id, queue, priority, state, ready_at, payload) "
           "VALUES (?, ?, ?, ?, ?, ?)")
_PROMOTE = ("UPDATE flowrra_tasks SET state = 0, lease_owner = NULL "
            "WHERE state <> 0 AND ready_at <= ?")
_READY_IN_QUEUE = ("SELECT priority, seq, id, payload FROM flowrra_tasks "
                   "WHERE state = 0 AND queue = ? ORDER BY priority, seq LIMIT ?")
_NEXT_DUE = "SELECT min(ready_at) FROM flowrra_tasks WHERE state <> 0"


def _row(task: Task, now: float) -> tuple[Any, ...]:
    delayed = task.eta is not None and task.eta > now
    return (task.id, task.queue, task.priority, DELAYED if delayed else READY,
            task.eta if delayed else 0.0, dumps(task.to_dict()))


def _where_delivery(task: Task) -> tuple[str, tuple[Any, ...]]:
    """SQL condition selecting this delivery of ``task``: its row if known, else any leased row."""
    if isinstance(task.receipt, int):
        return "seq = ? AND id = ?", (task.receipt, task.id)
    return "id = ? AND state = 2", (task.id,)


# -- jobs run on the database thread ------------------------------------------------------
def _enqueue(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> bool:
    conn.executemany(_INSERT, rows)
    return True


def _enqueue_once(conn: sqlite3.Connection, row: tuple[Any, ...], now: float,
                  prune: tuple[float, int] | None) -> bool:
    task_id = row[0]
    if prune is not None:
        oldest, keep = prune
        conn.execute("DELETE FROM flowrra_seen WHERE seen_at < ?", (oldest,))
        conn.execute("DELETE FROM flowrra_seen WHERE rowid <= "
                     "(SELECT max(rowid) FROM flowrra_seen) - ?", (keep,))
    if conn.execute("SELECT 1 FROM flowrra_seen WHERE id = ?", (task_id,)).fetchone() or \
            conn.execute("SELECT 1 FROM flowrra_tasks WHERE id = ? LIMIT 1", (task_id,)).fetchone():
        return False
    conn.execute("INSERT INTO flowrra_seen (id, seen_at) VALUES (?, ?)", (task_id, now))
    conn.execute(_INSERT, row)
    return True


def _probe(conn: sqlite3.Connection, queues: tuple[str, ...]) -> tuple[bool, float | None]:
    """Read-only: is anything claimable now, and when is the next delayed/leased row due?"""
    for name in queues:
        if conn.execute("SELECT 1 FROM flowrra_tasks WHERE state = 0 AND queue = ? LIMIT 1",
                        (name,)).fetchone():
            return True, None
    return False, conn.execute(_NEXT_DUE).fetchone()[0]


def _claim(conn: sqlite3.Connection, queues: tuple[str, ...], owner: str, limit: int,
           lease_for: float, max_dead: int) -> tuple[list[Task], float | None]:
    now = time.time()
    conn.execute(_PROMOTE, (now,))
    rows: list[tuple[Any, ...]] = []
    for name in queues:
        rows += conn.execute(_READY_IN_QUEUE, (name, limit)).fetchall()
    if len(queues) > 1:
        rows.sort()
        del rows[limit:]
    tasks: list[Task] = []
    if rows:
        conn.executemany(
            "UPDATE flowrra_tasks SET state = 2, lease_owner = ?, ready_at = ?, "
            "deliveries = deliveries + 1 WHERE seq = ?",
            [(owner, now + lease_for, row[1]) for row in rows])
        for _priority, seq, task_id, payload in rows:
            try:
                task = Task.from_dict(loads(payload))
            except Exception as exc:
                _bury_undecodable(conn, seq, task_id, payload, exc, now, max_dead)
                continue
            task.receipt = seq
            tasks.append(task)
    return tasks, conn.execute(_NEXT_DUE).fetchone()[0]


def _bury_undecodable(conn: sqlite3.Connection, seq: int, task_id: str, payload: str,
                      exc: Exception, now: float, max_dead: int) -> None:
    logger.error("task %s has an undecodable message (%s); moved to dead letters", task_id, exc)
    name = "<undecodable>"
    try:
        data = json.loads(payload)
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            name = data["name"]
    except ValueError:
        pass
    conn.execute("DELETE FROM flowrra_tasks WHERE seq = ?", (seq,))
    _add_dead(conn, (task_id, name, f"Cannot decode task message: {type(exc).__name__}: {exc}",
                     now, None, payload), max_dead)


def _add_dead(conn: sqlite3.Connection, values: tuple[Any, ...], max_dead: int) -> None:
    conn.execute("INSERT OR REPLACE INTO flowrra_dead (id, task_name, error, failed_at, payload, raw) "
                 "VALUES (?, ?, ?, ?, ?, ?)", values)
    conn.execute("DELETE FROM flowrra_dead WHERE seq <= (SELECT max(seq) FROM flowrra_dead) - ?",
                 (max_dead,))


def _finish(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> int:
    return conn.execute(f"DELETE FROM flowrra_tasks WHERE {where}", params).rowcount


def _requeue(conn: sqlite3.Connection, where: str, params: tuple[Any, ...],
             row: tuple[Any, ...]) -> None:
    _finish(conn, where, params)
    conn.execute(_INSERT, row)


def _release(conn: sqlite3.Connection, deliveries: list[tuple[str, tuple[Any, ...]]]) -> None:
    for where, params in deliveries:
        conn.execute("UPDATE flowrra_tasks SET state = 0, lease_owner = NULL, ready_at = 0 "
                     f"WHERE state = 2 AND {where}", params)


def _extend(conn: sqlite3.Connection, deliveries: list[tuple[str, tuple[Any, ...]]],
            owner: str, until: float) -> None:
    for where, params in deliveries:
        conn.execute(f"UPDATE flowrra_tasks SET ready_at = ? WHERE state = 2 AND lease_owner = ? "
                     f"AND {where}", (until, owner, *params))


def _dead_letter(conn: sqlite3.Connection, where: str, params: tuple[Any, ...],
                 values: tuple[Any, ...], max_dead: int) -> None:
    _finish(conn, where, params)
    _add_dead(conn, values, max_dead)


def _retry_dead(conn: sqlite3.Connection, task_id: str) -> Task | None:
    found = conn.execute("SELECT task_name, error, failed_at, payload FROM flowrra_dead WHERE id = ?",
                         (task_id,)).fetchone()
    if found is None or found[3] is None:
        return None  # unknown, or undecodable: kept for inspection and purge
    name, error, failed_at, payload = found
    try:
        task = retry_dead_letter_task(DeadLetter(task_id, name, error, _utc(failed_at), loads(payload)))
    except Exception as exc:
        logger.warning("dead letter %s cannot be rebuilt into a task: %s", task_id, exc)
        return None
    if task is None:
        return None
    conn.execute("DELETE FROM flowrra_dead WHERE id = ?", (task_id,))
    conn.execute(_INSERT, _row(task, time.time()))
    return task


def _list_dead(conn: sqlite3.Connection, limit: int, offset: int) -> list[DeadLetter]:
    rows = conn.execute("SELECT id, task_name, error, failed_at, payload, raw FROM flowrra_dead "
                        "ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    letters = []
    for task_id, name, error, failed_at, payload, raw in rows:
        try:
            decoded = loads(payload) if payload is not None else None
        except ValueError:
            decoded, raw = None, payload
        letters.append(DeadLetter(task_id, name, error, _utc(failed_at), decoded, raw))
    return letters


def _purge_dead(conn: sqlite3.Connection, task_id: str | None) -> int:
    if task_id is None:
        return conn.execute("DELETE FROM flowrra_dead").rowcount
    return conn.execute("DELETE FROM flowrra_dead WHERE id = ?", (task_id,)).rowcount


def _stats(conn: sqlite3.Connection, now: float) -> dict[str, int]:
    ready = conn.execute("SELECT count(*) FROM flowrra_tasks WHERE state = 0").fetchone()[0]
    due, delayed, leased = conn.execute(
        "SELECT coalesce(sum(state = 1 AND ready_at <= ?), 0), "
        "coalesce(sum(state = 1 AND ready_at > ?), 0), coalesce(sum(state = 2), 0) "
        "FROM flowrra_tasks WHERE state <> 0", (now, now)).fetchone()
    dead = conn.execute("SELECT count(*) FROM flowrra_dead").fetchone()[0]
    return {"queued": ready + due, "delayed": delayed, "leased": leased, "dead": dead}


def _register(conn: sqlite3.Connection, worker_id: str, info: str, expires: float, now: float) -> None:
    conn.execute("DELETE FROM flowrra_workers WHERE expires_at <= ?", (now,))
    conn.execute("INSERT OR REPLACE INTO flowrra_workers (id, info, expires_at) VALUES (?, ?, ?)",
                 (worker_id, info, expires))


def _workers(conn: sqlite3.Connection, now: float) -> list[tuple[str, str]]:
    return conn.execute("SELECT id, info FROM flowrra_workers WHERE expires_at > ? ORDER BY rowid",
                        (now,)).fetchall()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class SQLiteBroker(Broker):
    """Durable broker in a SQLite file (``sqlite:///relative.db``, ``sqlite:////abs/path.db``).

    Safe for several processes on one machine (not over a network file system).
    ``visibility_timeout`` bounds how long the tasks of a killed worker wait
    before another worker runs them; a live worker renews its leases.
    """

    durable = True
    shared = True
    schemes = ("sqlite",)

    def __init__(self, url: str = "sqlite:///flowrra.db", *, visibility_timeout: float = 30.0,
                 max_dead_letters: int = 10_000, dedupe_window: int = 100_000,
                 dedupe_ttl: float = 7 * 86400.0, lock_timeout: float = 30.0,
                 max_connections: int | None = None, socket_timeout: float | None = None,
                 retry_on_timeout: bool | None = None, queue_key: str | None = None) -> None:
        # max_connections, socket_timeout, retry_on_timeout and queue_key are network-broker
        # options accepted for a uniform configuration; they do not apply to a local file.
        super().__init__(visibility_timeout=visibility_timeout)
        if visibility_timeout <= 0:
            raise ValueError(f"visibility_timeout must be greater than zero, got {visibility_timeout}")
        parse_sqlite_url(url)  # fail now, with a clear message, on a malformed URL
        self.url = url
        self.max_dead_letters = max_dead_letters
        self.dedupe_window = dedupe_window
        self.dedupe_ttl = dedupe_ttl
        self.lock_timeout = lock_timeout
        self._db: SQLiteDatabase | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._waiting: list[tuple[tuple[tuple[str, ...], str], asyncio.Future[Task | None]]] = []
        self._claimer: asyncio.Task[None] | None = None
        self._kick_topic = f"kick-{next(_kick_ids)}"
        self._next_prune = 0.0
        self._background: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"SQLiteBroker({self.url!r})"

    # -- lifetime ---------------------------------------------------------------------
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

    def event_transport(self) -> EventTransport:
        from flowrra.transports.sqlite import SQLiteTransport

        return SQLiteTransport(self.url, lock_timeout=self.lock_timeout)

    def default_backend_url(self) -> str | None:
        return self.url

    async def close(self) -> None:
        claimer, self._claimer = self._claimer, None
        if claimer is not None:
            claimer.cancel()
            await asyncio.gather(claimer, return_exceptions=True)
        for _key, future in self._waiting:
            if not future.done():
                future.set_result(None)
        self._waiting.clear()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        db, self._db = self._db, None
        if db is not None:
            await db.release()

    # -- producing ------------------------------------------------------------------
    async def enqueue(self, task: Task, *, dedupe: bool = False) -> bool:
        db = await self._conn()
        now = time.time()
        row = _row(task, now)
        if not dedupe:
            return await db.write(_enqueue, [row], topic=TOPIC)
        prune = None
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 60.0
            prune = (now - self.dedupe_ttl, self.dedupe_window)
        return await db.write(_enqueue_once, row, now, prune, topic=TOPIC)

    async def enqueue_many(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        db = await self._conn()
        now = time.time()
        await db.write(_enqueue, [_row(task, now) for task in tasks], topic=TOPIC)

    async def revoke(self, task_id: str) -> bool:
        db = await self._conn()
        return await db.write(_finish, "id = ? AND state <> 2", (task_id,)) > 0

    # -- consuming ------------------------------------------------------------------
    async def dequeue(self, queues: Sequence[str], worker_id: str,
                      timeout: float = 1.0) -> Task | None:
        await self._conn()
        names = tuple(dict.fromkeys(queues))
        if not names:
            raise ValueError("dequeue needs at least one queue name")
        future: asyncio.Future[Task | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(((names, worker_id), future))
        self._kick()
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await future
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._salvage(future)
            raise
        if future.done() and not future.cancelled():
            return future.result()  # handed over just as the timeout fired
        future.cancel()
        return None

    def _kick(self) -> None:
        assert self._db is not None
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.get_running_loop().create_task(self._claim_loop())
        else:
            self._db.watch().changed(self._kick_topic)

    def _salvage(self, future: asyncio.Future[Task | None]) -> None:
        """A caller was cancelled: hand back a task that reached it too late."""
        if future.done() and not future.cancelled() and future.result() is not None:
            self._release_later([future.result()])
        else:
            future.cancel()

    async def _claim_loop(self) -> None:
        """Serve every waiting ``dequeue`` of this broker with as few claims as possible."""
        db = await self._conn()
        watch = db.watch()
        topics = (TOPIC, self._kick_topic)
        eager = True  # after a productive claim, claim again without probing first
        while True:
            self._waiting = [w for w in self._waiting if not w[1].done()]
            if not self._waiting:
                return
            seen = watch.version(*topics)
            groups: dict[tuple[tuple[str, ...], str], list[asyncio.Future[Task | None]]] = {}
            for key, future in self._waiting:
                groups.setdefault(key, []).append(future)
            got_any = False
            next_due: float | None = None
            for (names, owner), futures in groups.items():
                tasks, due = await self._claim_for(db, names, owner, len(futures), eager)
                got_any |= bool(tasks)
                if due is not None and (next_due is None or due < next_due):
                    next_due = due
                self._hand_out(tasks, futures)
            eager = got_any
            if got_any:
                continue
            wait = _IDLE_RECHECK
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - time.time()) + 0.001)
            await watch.wait(topics, seen, wait)

    async def _claim_for(self, db: SQLiteDatabase, names: tuple[str, ...], owner: str, limit: int,
                         eager: bool) -> tuple[list[Task], float | None]:
        if not eager:
            ready, due = await db.read(_probe, names)
            if not ready and (due is None or due > time.time()):
                return [], due
        future = db.write(_claim, names, owner, limit, self.visibility_timeout, self.max_dead_letters)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Closing while a claim is in flight: give its tasks back once it lands.
            future.add_done_callback(
                lambda f: f.cancelled() or f.exception() or self._release_later(f.result()[0]))
            raise

    def _hand_out(self, tasks: list[Task], futures: list[asyncio.Future[Task | None]]) -> None:
        pending = iter(tasks)
        for future in futures:
            if future.done():
                continue
            task = next(pending, None)
            if task is None:
                return
            future.set_result(task)
        leftover = list(pending)
        if leftover:
            self._release_later(leftover)

    def _release_later(self, tasks: list[Task]) -> None:
        if not tasks or self._db is None:
            return
        job = self._db.write(_release, [_where_delivery(t) for t in tasks], topic=TOPIC)
        self._background.add(job)
        job.add_done_callback(self._background_done)

    def _background_done(self, job: asyncio.Future[Any]) -> None:
        self._background.discard(job)
        if not job.cancelled() and job.exception() is not None:
            logger.warning("could not hand tasks back (their leases will expire): %s",
                           job.exception())

    async def ack(self, task: Task) -> None:
        db = await self._conn()
        where, params = _where_delivery(task)
        await db.write(_finish, where, params)

    async def requeue(self, task: Task) -> None:
        db = await self._conn()
        where, params = _where_delivery(task)
        await db.write(_requeue, where, params, _row(task, time.time()), topic=TOPIC)

    async def release(self, tasks: Sequence[Task]) -> None:
        if tasks:
            db = await self._conn()
            await db.write(_release, [_where_delivery(t) for t in tasks], topic=TOPIC)

    async def extend_leases(self, tasks: Sequence[Task], worker_id: str) -> None:
        if tasks:
            db = await self._conn()
            until = time.time() + self.visibility_timeout
            await db.write(_extend, [_where_delivery(t) for t in tasks], worker_id, until)

    # -- dead letters ---------------------------------------------------------------
    async def dead_letter(self, task: Task, error: str) -> None:
        db = await self._conn()
        where, params = _where_delivery(task)
        values = (task.id, task.name, error, time.time(), dumps(task.to_dict()), None)
        await db.write(_dead_letter, where, params, values, self.max_dead_letters)

    async def list_dead_letters(self, limit: int | None = None, offset: int = 0) -> list[DeadLetter]:
        db = await self._conn()
        return await db.read(_list_dead, -1 if limit is None else limit, offset)

    async def retry_dead_letter(self, task_id: str) -> Task | None:
        db = await self._conn()
        return await db.write(_retry_dead, task_id, topic=TOPIC)

    async def purge_dead_letters(self, task_id: str | None = None) -> int:
        db = await self._conn()
        return await db.write(_purge_dead, task_id)

    # -- introspection ----------------------------------------------------------------
    async def stats(self) -> dict[str, int]:
        db = await self._conn()
        return await db.read(_stats, time.time())

    async def register_worker(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        db = await self._conn()
        now = time.time()
        await db.write(_register, worker_id, dumps(info), now + ttl, now)

    async def unregister_worker(self, worker_id: str) -> None:
        db = await self._conn()
        await db.write(lambda conn: conn.execute("DELETE FROM flowrra_workers WHERE id = ?",
                                                 (worker_id,)))

    async def list_workers(self) -> list[dict[str, Any]]:
        db = await self._conn()
        workers = []
        for worker_id, info in await db.read(_workers, time.time()):
            data = loads(info)
            data.setdefault("id", worker_id)
            workers.append(data)
        return workers
