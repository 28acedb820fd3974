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
:mod:`flowrra.sqlite_db` within 2 ms while work keeps arriving (submit-to-start
latency measured at about 3 ms p50, 8-11 ms p99 between two processes on a busy
2-core machine), within 25 ms after a second of quiet and within 100 ms after
five seconds of quiet (the first task after a pause), plus a sub-millisecond
probe and claim. An idle consumer never writes to the file: it reads a cheap
probe first, so idle workers do not contend for the write lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowrra.brokers.base import Broker, DeadLetter, retry_dead_letter_task
from flowrra.brokers.batching import Batcher, ClaimCoalescer
from flowrra.serialization import dumps, loads
from flowrra.sqlite_db import SQLiteDatabase, execute_in, insert_rows, parse_sqlite_url
from flowrra.task import Task
from flowrra.transports.base import EventTransport

logger = logging.getLogger(__name__)

READY, DELAYED, LEASED = 0, 1, 2
TOPIC = "tasks"
_IDLE_RECHECK = 1.0  # seconds an idle consumer waits before re-probing on its own

_INSERT_HEAD = "INSERT INTO flowrra_tasks (id, queue, priority, state, ready_at, payload)"
_INSERT = _INSERT_HEAD + " VALUES (?, ?, ?, ?, ?, ?)"
_PROMOTE = ("UPDATE flowrra_tasks SET state = 0, lease_owner = NULL "
            "WHERE state <> 0 AND ready_at <= ?")
_READY_IN_QUEUE = ("SELECT priority, seq, id, payload FROM flowrra_tasks "
                   "WHERE state = 0 AND queue = ? ORDER BY priority, seq LIMIT ?")
# The same rows folded into one result row: one sqlite3 step however many tasks are claimed.
_READY_FOLDED = ("SELECT count(*), group_concat(priority), group_concat(seq), "
                 "'[' || group_concat(payload, ',') || ']' FROM (" + _READY_IN_QUEUE.replace(
                     "priority, seq, id, payload", "priority, seq, payload", 1) + ")")
_LEASE = ("UPDATE flowrra_tasks SET state = 2, lease_owner = ?, ready_at = ?, "
          "deliveries = deliveries + 1 WHERE seq IN ({marks})")
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
def _enqueue(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    insert_rows(conn, _INSERT_HEAD, rows)


def _known(conn: sqlite3.Connection, task_id: str) -> bool:
    """Seen by a deduplicated enqueue, or still held here (queued, leased or dead)."""
    return bool(conn.execute("SELECT 1 FROM flowrra_seen WHERE id = ?", (task_id,)).fetchone()
                or conn.execute("SELECT 1 FROM flowrra_tasks WHERE id = ? LIMIT 1",
                                (task_id,)).fetchone())


def _enqueue_once(conn: sqlite3.Connection, row: tuple[Any, ...], now: float,
                  prune: tuple[float, int] | None) -> bool:
    task_id = row[0]
    if prune is not None:
        oldest, keep = prune
        conn.execute("DELETE FROM flowrra_seen WHERE seen_at < ?", (oldest,))
        conn.execute("DELETE FROM flowrra_seen WHERE rowid <= "
                     "(SELECT max(rowid) FROM flowrra_seen) - ?", (keep,))
    if _known(conn, task_id):
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
    found: list[tuple[int, int, Task]] = []
    for name in queues:
        found += _ready_tasks(conn, name, limit, now, max_dead)
    if len(queues) > 1:
        found.sort(key=lambda item: item[:2])
        del found[limit:]
    if found:
        execute_in(conn, _LEASE, [seq for _p, seq, _t in found], (owner, now + lease_for))
    return [task for _p, _s, task in found], conn.execute(_NEXT_DUE).fetchone()[0]


def _ready_tasks(conn: sqlite3.Connection, queue: str, limit: int, now: float,
                 max_dead: int) -> list[tuple[int, int, Task]]:
    """The first ``limit`` ready tasks of ``queue`` as (priority, seq, task), decoded.

    Fast path: one folded row. If any message does not decode, the rows are read
    one by one and the undecodable ones move to the dead letters.
    """
    count, priorities, seqs, payloads = conn.execute(_READY_FOLDED, (queue, limit)).fetchone()
    if not count:
        return []
    try:
        messages = loads(payloads)
        if len(messages) != count:
            raise ValueError("message boundaries do not line up")
        found = []
        for priority, seq, message in zip(priorities.split(","), seqs.split(","), messages,
                                          strict=True):
            task = Task.from_dict(message)
            task.receipt = int(seq)
            found.append((int(priority), int(seq), task))
        return found
    except Exception:
        pass
    while True:  # bury what does not decode, until ``limit`` good ones (or all) are found
        found, buried = [], 0
        for priority, seq, task_id, payload in conn.execute(_READY_IN_QUEUE, (queue, limit)).fetchall():
            try:
                task = Task.from_dict(loads(payload))
            except Exception as exc:
                _bury_undecodable(conn, seq, task_id, payload, exc, now, max_dead)
                buried += 1
                continue
            task.receipt = seq
            found.append((priority, seq, task))
        if not buried:
            return found


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


def _ack_many(conn: sqlite3.Connection, seqs: list[int], ids: list[str]) -> None:
    execute_in(conn, "DELETE FROM flowrra_tasks WHERE seq IN ({marks})", seqs)
    for task_id in ids:
        _finish(conn, "id = ? AND state = 2", (task_id,))


def _requeue(conn: sqlite3.Connection, where: str, params: tuple[Any, ...],
             row: tuple[Any, ...]) -> None:
    _finish(conn, where, params)
    conn.execute(_INSERT, row)


def _split(tasks: Sequence[Task]) -> tuple[list[int], list[str]]:
    """Deliveries known by row (claimed here) and by id only (claimed by another instance)."""
    seqs = [t.receipt for t in tasks if isinstance(t.receipt, int)]
    ids = [t.id for t in tasks if not isinstance(t.receipt, int)]
    return seqs, ids


def _release(conn: sqlite3.Connection, seqs: list[int], ids: list[str]) -> None:
    head = "UPDATE flowrra_tasks SET state = 0, lease_owner = NULL, ready_at = 0 WHERE state = 2 AND "
    execute_in(conn, head + "seq IN ({marks})", seqs)
    execute_in(conn, head + "id IN ({marks})", ids)


def _extend(conn: sqlite3.Connection, seqs: list[int], ids: list[str], owner: str,
            until: float) -> None:
    head = "UPDATE flowrra_tasks SET ready_at = ? WHERE state = 2 AND lease_owner = ? AND "
    execute_in(conn, head + "seq IN ({marks})", seqs, (until, owner))
    execute_in(conn, head + "id IN ({marks})", ids, (until, owner))


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


def _unregister(conn: sqlite3.Connection, worker_id: str) -> None:
    conn.execute("DELETE FROM flowrra_workers WHERE id = ?", (worker_id,))


def _workers(conn: sqlite3.Connection, now: float) -> list[tuple[str, str]]:
    return conn.execute("SELECT id, info FROM flowrra_workers WHERE expires_at > ? ORDER BY rowid",
                        (now,)).fetchall()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class _ClaimState:
    """What one coalesced consumer (one set of queues, one worker) remembers between claims."""

    names: tuple[str, ...]
    owner: str
    seen: int = 0  # watch version read before the last claim: later changes wake the wait
    eager: bool = True  # the last claim found work: claim again without probing first


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
        self._consumers: dict[tuple[tuple[str, ...], str], ClaimCoalescer[Task]] = {}
        self._enqueues: Batcher[tuple[Any, ...], None] = Batcher(self._flush_enqueues,
                                                                 name="sqlite-enqueue")
        self._acks: Batcher[Task, None] = Batcher(self._flush_acks, name="sqlite-ack")
        self._next_prune = 0.0
        self._closing = False
        self._stop_topic = f"stop-{id(self)}"

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
                self._db = await SQLiteDatabase.open(self.url, lock_timeout=self.lock_timeout)
                self._closing = False

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
        self._closing = True
        consumers, self._consumers = list(self._consumers.values()), {}
        closing = [asyncio.ensure_future(consumer.close()) for consumer in consumers]
        if self._db is not None and consumers:
            self._db.watch().changed(self._stop_topic)  # end idle waits now, not after a second
        await asyncio.gather(*closing)
        await self._enqueues.close()
        await self._acks.close()
        db, self._db = self._db, None
        if db is not None:
            await db.release()

    # -- producing ------------------------------------------------------------------
    async def enqueue(self, task: Task, *, dedupe: bool = False) -> bool:
        db = await self._conn()
        now = time.time()
        row = _row(task, now)
        if not dedupe:
            await self._enqueues.submit(row)
            return True
        prune = None
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 60.0
            prune = (now - self.dedupe_ttl, self.dedupe_window)
        return await db.write(_enqueue_once, row, now, prune, topic=TOPIC)

    async def enqueue_many(self, tasks: Sequence[Task]) -> None:
        if tasks:
            db = await self._conn()
            now = time.time()
            await db.write(_enqueue, [_row(task, now) for task in tasks], topic=TOPIC)

    async def _flush_enqueues(self, rows: list[tuple[Any, ...]]) -> None:
        db = await self._conn()
        await db.write(_enqueue, rows, topic=TOPIC)

    async def is_duplicate(self, task_id: str) -> bool:
        db = await self._conn()
        return await db.read(_known, task_id)

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
        consumer = self._consumers.get((names, worker_id))
        if consumer is None:
            state = _ClaimState(names, worker_id)
            consumer = self._consumers[(names, worker_id)] = ClaimCoalescer(
                lambda n, _woken: self._claim(state, n), lambda s: self._wait_for_work(state, s),
                self.release, max_wait=_IDLE_RECHECK, name=f"sqlite-claim:{','.join(names)}")
        return await consumer.get(timeout)

    async def _claim(self, state: _ClaimState, wanted: int) -> tuple[list[Task], float | None]:
        db = await self._conn()
        state.seen = db.watch().version(TOPIC, self._stop_topic)
        if wanted <= 0 or self._closing:
            await asyncio.sleep(0)
            return [], None
        if not state.eager:  # idle: look before taking the write lock
            ready, due = await db.read(_probe, state.names)
            if not ready and (due is None or due > time.time()):
                return [], _seconds_until(due)
        job = db.write(_claim, state.names, state.owner, wanted, self.visibility_timeout,
                       self.max_dead_letters)
        try:
            tasks, due = await asyncio.shield(job)
        except asyncio.CancelledError:
            # Closing while a claim is in flight: give its tasks back once it lands.
            job.add_done_callback(self._release_landed)
            raise
        state.eager = bool(tasks)
        return tasks, _seconds_until(due)

    def _release_landed(self, job: asyncio.Future[tuple[list[Task], float | None]]) -> None:
        if job.cancelled() or job.exception() is not None or self._db is None:
            return
        tasks = job.result()[0]
        if tasks:
            self._db.write(_release, *_split(tasks), topic=TOPIC)

    async def _wait_for_work(self, state: _ClaimState, seconds: float) -> None:
        db = await self._conn()
        if self._closing:
            await asyncio.sleep(0.001)
            return
        await db.watch().wait((TOPIC, self._stop_topic), state.seen, seconds)

    async def ack(self, task: Task) -> None:
        await self._conn()
        await self._acks.submit(task)

    async def _flush_acks(self, tasks: list[Task]) -> None:
        db = await self._conn()
        await db.write(_ack_many, *_split(tasks))

    async def requeue(self, task: Task) -> None:
        db = await self._conn()
        where, params = _where_delivery(task)
        await db.write(_requeue, where, params, _row(task, time.time()), topic=TOPIC)

    async def release(self, tasks: Sequence[Task]) -> None:
        if tasks:
            db = await self._conn()
            await db.write(_release, *_split(tasks), topic=TOPIC)

    async def extend_leases(self, tasks: Sequence[Task], worker_id: str) -> None:
        if tasks:
            db = await self._conn()
            until = time.time() + self.visibility_timeout
            await db.write(_extend, *_split(tasks), worker_id, until)

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
        await db.write(_unregister, worker_id)

    async def list_workers(self) -> list[dict[str, Any]]:
        db = await self._conn()
        workers = []
        for worker_id, info in await db.read(_workers, time.time()):
            data = loads(info)
            data.setdefault("id", worker_id)
            workers.append(data)
        return workers


def _seconds_until(epoch: float | None) -> float | None:
    return None if epoch is None else max(0.0, epoch - time.time())
