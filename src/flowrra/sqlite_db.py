"""One SQLite file shared by the broker, the result backend and the event transport.

Why it is built this way:

* **One connection on one thread per file per process.** ``sqlite3`` calls block,
  so they never run on the event loop; a single dedicated thread owns the
  connection, so it is never used from two threads, and the broker, backend and
  transport of every app in the process share it (no lock contention between
  them inside one process).
* **Group commit.** Write jobs queued while the thread is busy run together in
  one ``BEGIN IMMEDIATE`` transaction. Under load a single commit carries the
  claims, result records, acks and events of many tasks; when idle a job costs
  one transaction. Jobs are pure database functions: if one fails, the
  transaction is rolled back and each job runs again in its own, so one failing
  job never undoes the others.
* **WAL mode**, so readers never block the writer. When another process holds
  the write lock, ``BEGIN IMMEDIATE`` is retried every 50 us growing to 5 ms
  (SQLite's own busy handler would sleep a whole millisecond at once, while
  locks here are held for tens of microseconds); only a lock held longer than
  ``lock_timeout`` (30 s) becomes an error, which names the file.
* **Few sqlite3 steps per transaction.** Every step releases and re-takes the
  GIL, which costs up to a thread switch interval while the event loop is busy;
  so rows are written with multi-row statements and read folded into one row
  where it matters (claims, event tails, completions).
* **synchronous=NORMAL by default**: a committed transaction survives the death
  of any process (SIGKILL), but an operating-system crash or power cut may lose
  the last few commits (never corrupt the file). ``?synchronous=full`` in the
  URL makes every commit survive power loss too, at the cost of one fsync per
  group commit (about half the tasks/s on the benchmark machine).
* **Change detection without hammering the file** (:class:`Watch`): other
  processes' commits are noticed by ``stat`` of the ``-wal`` file (a few
  microseconds, on the event loop, no thread hop) every 2 ms while something has
  changed within the last second, every 25 ms up to 5 s of quiet and every
  100 ms after that (an idle worker then costs well under 1% of a CPU); changes
  made by this process wake its waiters at once through :meth:`SQLiteDatabase.poke`.
* **A versioned schema** (table ``flowrra_schema``) created on first connect,
  inside a write transaction so that processes starting together agree.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from flowrra.exceptions import BackendError
from flowrra.urls import sqlite_path

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
_MAX_BATCH = 512
_SYNC_MODES = ("off", "normal", "full", "extra")

#: Migrations by version; each runs once, in one transaction, on first connect.
MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        # Broker: state 0 = ready, 1 = delayed until ready_at, 2 = leased until ready_at.
        "CREATE TABLE flowrra_tasks (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, "
        "queue TEXT NOT NULL, priority INTEGER NOT NULL, state INTEGER NOT NULL, "
        "ready_at REAL NOT NULL, lease_owner TEXT, deliveries INTEGER NOT NULL DEFAULT 0, "
        "payload TEXT NOT NULL)",
        "CREATE INDEX flowrra_tasks_ready ON flowrra_tasks (queue, priority, seq) WHERE state = 0",
        "CREATE INDEX flowrra_tasks_waiting ON flowrra_tasks (ready_at) WHERE state <> 0",
        "CREATE INDEX flowrra_tasks_id ON flowrra_tasks (id)",
        "CREATE TABLE flowrra_seen (id TEXT PRIMARY KEY, seen_at REAL NOT NULL)",
        "CREATE INDEX flowrra_seen_age ON flowrra_seen (seen_at)",
        "CREATE TABLE flowrra_dead (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL "
        "UNIQUE, task_name TEXT NOT NULL, error TEXT NOT NULL, failed_at REAL NOT NULL, "
        "payload TEXT, raw TEXT)",
        "CREATE TABLE flowrra_workers (id TEXT PRIMARY KEY, info TEXT NOT NULL, "
        "expires_at REAL NOT NULL)",
        # Result backend: one row per task id.
        # done_seq numbers final records in commit order, for waiters in other processes.
        "CREATE TABLE flowrra_results (task_id TEXT PRIMARY KEY, task_name TEXT NOT NULL, "
        "status TEXT NOT NULL, updated_at REAL NOT NULL, expires_at REAL, done_seq INTEGER, "
        "record TEXT NOT NULL)",
        "CREATE INDEX flowrra_results_status ON flowrra_results (status, updated_at)",
        "CREATE INDEX flowrra_results_expiry ON flowrra_results (expires_at) "
        "WHERE expires_at IS NOT NULL",
        "CREATE INDEX flowrra_results_done ON flowrra_results (done_seq) WHERE done_seq IS NOT NULL",
        "CREATE TABLE flowrra_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO flowrra_counters (name, value) VALUES ('results_done', 0)",
        # Event transport: an append-only log tailed by id, pruned by age and size.
        "CREATE TABLE flowrra_events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "created_at REAL NOT NULL, control INTEGER NOT NULL, body TEXT NOT NULL)",
    ),
}


#: Row counts of multi-row statements: few distinct statement texts (so they stay in the
#: statement cache) and at most 128 x 7 = 896 parameters (under the old limit of 999).
_CHUNKS = (128, 16, 4, 1)


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, width: int, count: int, tail: str) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([row] * count)}{tail}"


@functools.lru_cache(maxsize=256)
def _in_sql(template: str, count: int) -> str:
    return template.format(marks=", ".join("?" * count))


def _chunked(items: Sequence[Any]) -> list[Sequence[Any]]:
    parts, start = [], 0
    for size in _CHUNKS:
        while len(items) - start >= size:
            parts.append(items[start:start + size])
            start += size
    return parts


def insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]],
                tail: str = "") -> None:
    """Insert many rows with a few multi-row statements.

    Each ``sqlite3`` step releases and re-takes the GIL, which costs up to a thread
    switch interval while the event loop is busy, so statements that carry many
    rows at once matter more here than anything else.
    """
    if not rows:
        return
    width = len(rows[0])
    for part in _chunked(rows):
        conn.execute(_values_sql(head, width, len(part), tail), [v for row in part for v in row])


def execute_in(conn: sqlite3.Connection, template: str, keys: Sequence[Any],
               before: Sequence[Any] = ()) -> int:
    """Run ``template`` (with ``{marks}`` for an IN list) over ``keys`` in a few statements."""
    changed = 0
    for part in _chunked(keys):
        changed += conn.execute(_in_sql(template, len(part)), [*before, *part]).rowcount
    return changed


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db?synchronous=full`` -> (``rel.db``, ``{"synchronous": "full"}``)."""
    path = sqlite_path(url)
    query = url.split("?", 1)[1] if "?" in url else ""
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise ValueError(f"Unknown SQLite URL option(s) {sorted(unknown)} in {url!r}; "
                         "the only option is 'synchronous' (off, normal, full, extra)")
    return path, options


def is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


class _Job:
    __slots__ = ("args", "fn", "future", "loop", "write")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], write: bool,
                 loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.write = write
        self.loop = loop
        self.future = future


def _noop(conn: sqlite3.Connection) -> None:
    return None


def _settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class SQLiteDatabase:
    """A shared handle on one database file; get one with :meth:`acquire`."""

    _registry: dict[str, SQLiteDatabase] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str, *, synchronous: str = "normal", lock_timeout: float = 30.0) -> None:
        if synchronous not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, got {synchronous!r}")
        self.path = path
        self._wal = path + "-wal"
        self.synchronous = synchronous
        self.lock_timeout = lock_timeout
        self._users = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._open_error: BaseException | None = None
        self._forked = False
        self._watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watch] = (
            weakref.WeakKeyDictionary())
        #: ``stat`` signature of the files right after this process's last commit.
        self.own_signature: tuple[int, int, int] | None = None
        #: Bumped when a commit of another process is seen just before one of ours.
        self.foreign_changes = 0

    # -- lifetime ---------------------------------------------------------------------
    @classmethod
    def acquire(cls, url: str, *, lock_timeout: float = 30.0) -> SQLiteDatabase:
        """The process-wide handle for the file of ``url`` (opened on first use)."""
        path, options = parse_sqlite_url(url)
        real = os.path.realpath(os.path.abspath(path))
        with cls._registry_lock:
            db = cls._registry.get(real)
            synchronous = options.get("synchronous", "normal")
            if db is None:
                db = cls(real, synchronous=synchronous, lock_timeout=lock_timeout)
                cls._registry[real] = db
            elif db.synchronous != synchronous:
                logger.warning("%s is already open in this process with synchronous=%s; "
                               "ignoring synchronous=%s from %s", real, db.synchronous,
                               synchronous, url)
            db._users += 1
            if db._thread is None:
                db._thread = threading.Thread(target=db._serve, name=f"flowrra-sqlite:{real}",
                                              daemon=True)
                db._thread.start()
        return db

    @classmethod
    async def open(cls, url: str, *, lock_timeout: float = 30.0) -> SQLiteDatabase:
        """Acquire the handle and wait until it is usable; give it back if it never is."""
        db = cls.acquire(url, lock_timeout=lock_timeout)
        try:
            await db.ready()
        except BaseException:
            await db.release()
            raise
        return db

    async def ready(self) -> None:
        """Wait until the connection is open and the schema is current (raises if it cannot be)."""
        await self.read(_noop)

    async def release(self) -> None:
        """Give back one use; the last user closes the connection and stops the thread."""
        with self._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            if self._registry.get(self.path) is self:
                del self._registry[self.path]
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)

    # -- running jobs --------------------------------------------------------------------
    def read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` on the database thread (jobs run in submission order)."""
        return self._submit(fn, args, False)

    def write(self, fn: Callable[..., T], *args: Any, topic: str | None = None) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` in a write transaction shared with other pending writes.

        With ``topic``, waiters of this process on that topic are woken once it commits.
        """
        future = self._submit(fn, args, True)
        if topic is not None:
            future.add_done_callback(lambda f: f.cancelled() or f.exception() or self.poke(topic))
        return future

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], write: bool) -> asyncio.Future[Any]:
        if self._thread is None:
            raise BackendError(f"SQLite database {self.path} is closed; call connect() first")
        if self._forked:
            raise BackendError(f"SQLite database {self.path} was opened before this process was "
                               "forked; create the broker/backend again in the child process")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put(_Job(fn, args, write, loop, future))
        return future

    # -- change notification ----------------------------------------------------------------
    def watch(self) -> Watch:
        """The :class:`Watch` of this file for the running event loop."""
        loop = asyncio.get_running_loop()
        found = self._watches.get(loop)
        if found is None:
            found = self._watches[loop] = Watch(self)
        return found

    def poke(self, topic: str | None = None) -> None:
        """Wake this process's waiters on ``topic`` (all topics if None) after a local change."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, watch in list(self._watches.items()):
            if running is loop:
                watch.changed(topic)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(watch.changed, topic)

    def signature(self) -> tuple[int, int, int]:
        """Cheap fingerprint of the last commit: every commit appends to (or rewrites) the WAL."""
        try:
            st = os.stat(self._wal)
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    # -- the database thread -------------------------------------------------------------
    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._open()
        except BaseException as exc:
            logger.error("cannot open SQLite database %s: %s", self.path, exc)
            self._open_error = exc
        jobs = self._jobs
        try:
            while True:
                job = jobs.get()
                if job is None:
                    break
                batch = [job]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
                if stop:
                    break
        finally:
            if conn is not None:
                conn.close()
            self._drain_closed()

    def _drain_closed(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._deliver([(job, False, BackendError(f"SQLite database {self.path} was closed"))])

    def _open(self) -> sqlite3.Connection:
        folder = os.path.dirname(self.path)
        if folder and not os.path.isdir(folder):
            raise BackendError(f"the folder {folder!r} does not exist; create it or fix the URL")
        # No SQLite busy handler: its first sleep is a whole millisecond, while locks here
        # are held for tens of microseconds. _retry_locked polls far more finely instead.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=0)
        try:
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA temp_store=MEMORY")
            self._retry_locked(lambda: self._migrate(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS flowrra_schema (version INTEGER PRIMARY KEY, "
                         "applied_at REAL NOT NULL)")
            current = conn.execute("SELECT max(version) FROM flowrra_schema").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise BackendError(
                    f"{self.path} has Flowrra schema version {current}, newer than this Flowrra "
                    f"understands ({SCHEMA_VERSION}); upgrade flowrra or use another file")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO flowrra_schema (version, applied_at) VALUES (?, ?)",
                             (version, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _retry_locked(self, fn: Callable[[], T]) -> T:
        """Call ``fn``, retrying while another process holds the lock, up to ``lock_timeout``."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.00005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise BackendError(
                        f"SQLite database {self.path} stayed locked by another process for more "
                        f"than {self.lock_timeout:g}s; is a process stuck inside a transaction?"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.005)

    def _run_batch(self, conn: sqlite3.Connection | None, batch: list[_Job]) -> None:
        if conn is None:
            error = BackendError(f"cannot open SQLite database {self.path}: {self._open_error}")
            self._deliver([(job, False, error) for job in batch])
            return
        if any(job.write for job in batch):
            # In submission order, reads included, so a read queued after a write sees it.
            self._deliver(self._run_writes(conn, batch))
            return
        outcomes: list[tuple[_Job, bool, Any]] = []
        for job in batch:
            try:
                outcomes.append((job, True, self._retry_locked(lambda j=job: j.fn(conn, *j.args))))
            except BaseException as exc:
                outcomes.append((job, False, exc))
        self._deliver(outcomes)

    def _run_writes(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        """Run ``jobs`` in one transaction; if one fails, run each in its own instead.

        Jobs are pure database functions, so re-running them after a rollback is
        safe, and the common case pays for no savepoints.
        """
        outcomes = self._transaction(conn, jobs)
        if len(jobs) == 1 or all(ok for _job, ok, _value in outcomes):
            return outcomes
        return [outcome for job in jobs for outcome in self._transaction(conn, [job])]

    def _transaction(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        try:
            self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        except BaseException as exc:
            return [(job, False, exc) for job in jobs]
        # We hold the write lock: a file that changed since our last commit was changed by
        # another process, whose commit a stat-based watcher may otherwise take for ours.
        if self.signature() != self.own_signature:
            self.foreign_changes += 1
        outcomes: list[tuple[_Job, bool, Any]] = []
        for job in jobs:
            try:
                outcomes.append((job, True, job.fn(conn, *job.args)))
            except BaseException as exc:
                if len(jobs) > 1:
                    conn.execute("ROLLBACK")
                    return [(job, False, exc)]  # the caller re-runs the jobs one by one
                outcomes.append((job, False, exc))
        try:
            if outcomes[0][1] or len(jobs) > 1:
                self._retry_locked(lambda: conn.execute("COMMIT"))
            else:
                conn.execute("ROLLBACK")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(job, False, exc) for job in jobs]
        self.own_signature = self.signature()
        return outcomes

    @staticmethod
    def _deliver(outcomes: list[tuple[_Job, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in outcomes:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:
                pass  # that event loop is closed: nobody is waiting any more


def _forget_after_fork() -> None:
    # A child process inherits the registry but not the threads behind it.
    for db in SQLiteDatabase._registry.values():
        db._forked = True
    SQLiteDatabase._registry = {}
    SQLiteDatabase._registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class Watch:
    """Wakes coroutines of one event loop when the database may have changed.

    Changes are counted per topic ("tasks", "results", "events", or a private
    topic); a change seen in another process counts for every topic. A waiter
    remembers the count it last acted on, and :meth:`wait` returns as soon as the
    count moves past it, so a change between a check and the wait is never
    missed. The file is stat-ed only while someone waits.
    """

    #: (seconds without any change, stat interval): quick while busy, cheap when idle.
    TICKS = ((1.0, 0.002), (5.0, 0.025), (float("inf"), 0.1))

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        self._all = 0
        self._topics: dict[str, int] = {}
        self._waiters = 0
        self._event = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._last_change = time.monotonic()

    def version(self, *topics: str) -> int:
        return self._all + sum(self._topics.get(topic, 0) for topic in topics)

    def changed(self, topic: str | None = None) -> None:
        if topic is None:
            self._all += 1
        else:
            self._topics[topic] = self._topics.get(topic, 0) + 1
        self._last_change = time.monotonic()
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, topics: tuple[str, ...], seen: int, timeout: float) -> None:
        """Return once ``version(*topics)`` differs from ``seen``, or after ``timeout``."""
        if timeout <= 0 or self.version(*topics) != seen:
            return
        self._waiters += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            async with asyncio.timeout(timeout):
                while self.version(*topics) == seen:
                    await self._event.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters -= 1

    async def _poll(self) -> None:
        db = self.db
        seen_sig = db.signature()
        seen_foreign = db.foreign_changes
        while self._waiters > 0:
            quiet = time.monotonic() - self._last_change
            await asyncio.sleep(next(tick for limit, tick in self.TICKS if quiet < limit))
            sig = db.signature()
            foreign = db.foreign_changes
            if foreign != seen_foreign or (sig != seen_sig and sig != db.own_signature):
                self.changed()
            seen_sig, seen_foreign = sig, foreign
