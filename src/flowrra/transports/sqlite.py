"""SQLite event transport: an append-only events table that every listening process tails.

Publishing appends to a buffer and returns at once; one job on the database
thread writes everything buffered by then in a single insert, inside whatever
transaction the thread runs next (so a busy worker pays no write per event).
Listeners read rows past the last id they saw when the file watcher of
:mod:`flowrra.sqlite_db` reports a change (another process: within 2 ms
while busy, 25-100 ms after a quiet spell; this process: at once), reading at most every
``min_interval`` seconds so a burst is fetched in a few queries. Rows older than
``max_age`` seconds, or beyond the newest ``max_events``, are pruned by publishers.
Delivery is best effort, like Redis pub/sub: a listener that falls further
behind than the pruning window misses what was pruned.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sqlite3
import threading
import time
from collections import deque
from typing import Any

from flowrra.serialization import dumps, loads
from flowrra.sqlite_db import SQLiteDatabase, insert_rows, parse_sqlite_url
from flowrra.transports.base import EventHandler, EventTransport

logger = logging.getLogger(__name__)

TOPIC = "events"
_BATCH = 1000
_RECHECK = 1.0
_PRUNE_EVERY = 1.0


def _last_id(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM flowrra_events").fetchone()[0]


def _since(conn: sqlite3.Connection, after: int, control_only: bool) -> tuple[int, list[Any]]:
    """Events after id ``after`` (only ``control.*`` ones if asked), oldest first, and the new mark.

    The rows come folded into one JSON array of ``[id, event]`` pairs, so a burst of
    events costs one sqlite3 step instead of one per event.
    """
    newest = conn.execute("SELECT max(id) FROM flowrra_events").fetchone()[0] or 0
    if newest <= after:
        return after, []
    count, last, folded = conn.execute(
        "SELECT count(*), max(id), '[' || group_concat('[' || id || ',' || body || ']', ',') || ']' "
        "FROM (SELECT id, body FROM flowrra_events WHERE id > ? AND id <= ? AND control >= ? "
        "ORDER BY id LIMIT ?)", (after, newest, int(control_only), _BATCH)).fetchone()
    mark = last if count == _BATCH else newest
    if not count:
        return mark, []
    try:
        pairs = loads(folded)
    except ValueError:
        logger.error("events %d..%d of the SQLite events table are corrupt; skipped", after + 1, mark)
        return mark, []
    pairs.sort(key=lambda pair: pair[0])
    return mark, [event for _id, event in pairs]


def _prune(conn: sqlite3.Connection, before: float, keep: int) -> None:
    conn.execute("DELETE FROM flowrra_events WHERE id <= (SELECT max(id) FROM flowrra_events) - ?",
                 (keep,))
    oldest = conn.execute("SELECT id FROM flowrra_events WHERE created_at >= ? ORDER BY id LIMIT 1",
                          (before,)).fetchone()
    if oldest is None:
        conn.execute("DELETE FROM flowrra_events WHERE created_at < ?", (before,))
    else:
        conn.execute("DELETE FROM flowrra_events WHERE id < ?", (oldest[0],))


class _Flush:
    """A database-thread job writing everything published so far in a few statements.

    It takes the outbox once, so running it again (after a rolled-back group
    commit) writes the same events rather than none.
    """

    def __init__(self, transport: SQLiteTransport, prune: tuple[float, int] | None) -> None:
        self.transport = transport
        self.prune = prune
        self.rows: list[tuple[float, int, str]] | None = None

    def __call__(self, conn: sqlite3.Connection) -> None:
        if self.rows is None:
            self.rows = self.transport._take_outbox()
        insert_rows(conn, "INSERT INTO flowrra_events (created_at, control, body)", self.rows)
        if self.prune is not None:
            _prune(conn, *self.prune)


class SQLiteTransport(EventTransport):
    remote = True

    def __init__(self, url: str = "sqlite:///flowrra.db", *, max_age: float = 60.0,
                 max_events: int = 10_000, min_interval: float = 0.005,
                 lock_timeout: float = 30.0) -> None:
        parse_sqlite_url(url)
        self.url = url
        self.max_age = max_age
        self.max_events = max_events
        self.min_interval = min_interval
        self.lock_timeout = lock_timeout
        self._db: SQLiteDatabase | None = None
        self._opening: asyncio.Lock | None = None
        # Filled on the event loop, drained on the database thread.
        self._outbox: deque[tuple[float, int, str]] = deque()
        self._control_only = False
        self._flush_queued = False
        self._flush_lock = threading.Lock()
        self._flushes: set[asyncio.Future[Any]] = set()
        self._next_prune = 0.0
        self._listener: asyncio.Task[None] | None = None
        self._handler: EventHandler | None = None

    def __repr__(self) -> str:
        return f"SQLiteTransport({self.url!r})"

    async def _conn(self) -> SQLiteDatabase:
        if self._db is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._db is None:
                    self._db = await SQLiteDatabase.open(self.url, lock_timeout=self.lock_timeout)
        return self._db

    # -- publishing ------------------------------------------------------------------------
    async def publish(self, event: dict[str, Any]) -> None:
        db = self._db or await self._conn()
        control = str(event.get("type", "")).startswith("control.")
        self._outbox.append((time.time(), int(control), dumps(event)))
        with self._flush_lock:
            if self._flush_queued:
                return
            self._flush_queued = True
        prune = None
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + _PRUNE_EVERY
            prune = (time.time() - self.max_age, self.max_events)
        job = db.write(_Flush(self, prune), topic=TOPIC)
        self._flushes.add(job)
        job.add_done_callback(self._flushed)

    def _take_outbox(self) -> list[tuple[float, int, str]]:
        with self._flush_lock:
            self._flush_queued = False
            outbox = self._outbox
            return [outbox.popleft() for _ in range(len(outbox))]

    def _flushed(self, job: asyncio.Future[Any]) -> None:
        self._flushes.discard(job)
        if not job.cancelled() and job.exception() is not None:
            logger.warning("could not publish events to %s: %s", self.url, job.exception())

    # -- listening ---------------------------------------------------------------------------
    async def listen(self, handler: EventHandler) -> None:
        self._handler = handler
        if self._listener is not None and not self._listener.done():
            return
        db = await self._conn()
        start = await db.read(_last_id)
        self._listener = asyncio.get_running_loop().create_task(self._tail(db, start))

    async def _tail(self, db: SQLiteDatabase, after: int) -> None:
        watch = db.watch()
        while True:
            seen = watch.version(TOPIC)
            started = time.monotonic()
            try:
                after, events = await db.read(_since, after, self._control_only)
            except Exception as exc:
                logger.warning("cannot read events from %s (%s); retrying", self.url, exc)
                events = []
            for event in events:
                await self._deliver(event)
            if len(events) == _BATCH:
                continue
            await watch.wait((TOPIC,), seen, _RECHECK)
            pause = self.min_interval - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(pause)

    async def _deliver(self, event: Any) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            outcome = handler(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            logger.exception("event handler failed for an event from %s", self.url)

    async def set_interest(self, *, control_only: bool) -> None:
        """Only ``control.*`` events are read (a worker with no local subscriber needs no more)."""
        self._control_only = control_only

    async def stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        self._handler = None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_listening()
        if self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)
        db, self._db = self._db, None
        if db is not None:
            await db.release()
