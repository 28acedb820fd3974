"""SQLite specifics: URLs, schema, locking, undecodable rows, group commit, clean shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from flowrra import Flowrra
from flowrra.backends import get_backend
from flowrra.backends.sqlite import SQLiteBackend
from flowrra.brokers import get_broker
from flowrra.brokers.sqlite import SQLiteBroker
from flowrra.exceptions import BackendError
from flowrra.sqlite_db import SCHEMA_VERSION, SQLiteDatabase
from flowrra.task import Task, utcnow
from flowrra.transports.sqlite import SQLiteTransport
from tests.conftest import wait_until, waiting_callers


def task(task_id: str, **fields) -> Task:
    return Task(task_id, "job", submitted_at=utcnow(), **fields)


# -- URLs -------------------------------------------------------------------------------
async def test_absolute_url_keeps_its_leading_slash(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    target = tmp_path / "abs" / "queue.db"
    target.parent.mkdir()
    url = f"sqlite:///{target}"
    assert url.startswith("sqlite:////")
    broker = SQLiteBroker(url)
    await broker.enqueue(task("a"))
    await broker.close()
    assert target.exists()
    assert list(elsewhere.iterdir()) == []  # nothing created relative to the cwd


async def test_relative_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    broker = SQLiteBroker("sqlite:///rel.db")
    await broker.enqueue(task("a"))
    await broker.close()
    assert (tmp_path / "rel.db").exists()


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite://rel.db", "sqlite:///relative.db"),
    ("sqlite:///", "names no database file"),
    ("sqlite:///x.db?journal=wal", "Unknown SQLite URL option"),
])
def test_malformed_urls_are_refused_with_a_hint(url, message):
    with pytest.raises(ValueError, match=message):
        SQLiteBroker(url)
    with pytest.raises(ValueError, match=message):
        SQLiteBackend(url)


async def test_missing_folder_is_named_in_the_error(tmp_path):
    broker = SQLiteBroker(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")
    with pytest.raises(BackendError, match=r"nope.*does not exist"):
        await broker.connect()
    await broker.close()


async def test_bad_synchronous_option(tmp_path):
    with pytest.raises(ValueError, match="synchronous must be one of"):
        await SQLiteBroker(f"sqlite:///{tmp_path / 'x.db'}?synchronous=sometimes").connect()


async def test_url_factories_and_the_shared_default(db_url):
    assert isinstance(get_broker(db_url), SQLiteBroker)
    assert isinstance(get_backend(db_url), SQLiteBackend)
    app = Flowrra.from_urls(broker=db_url)
    assert isinstance(app.broker, SQLiteBroker) and isinstance(app.backend, SQLiteBackend)
    assert app.backend.url == db_url == app.broker.default_backend_url()
    assert isinstance(app.transport, SQLiteTransport) and app.transport.url == db_url


# -- schema -----------------------------------------------------------------------------
async def test_schema_is_versioned_and_a_newer_file_is_refused(db_url, tmp_path):
    broker = SQLiteBroker(db_url)
    await broker.connect()
    await broker.close()
    path = tmp_path / "flowrra.db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(version) FROM flowrra_schema").fetchone()[0] == SCHEMA_VERSION
        conn.execute("INSERT INTO flowrra_schema (version, applied_at) VALUES (?, 0)",
                     (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(BackendError, match="newer than this Flowrra"):
        await SQLiteBroker(db_url).connect()


# -- undecodable rows ---------------------------------------------------------------------
async def test_rows_that_are_not_tasks_go_to_dead_letters_without_blocking_the_rest(db_url, tmp_path):
    broker = SQLiteBroker(db_url)
    await broker.enqueue(task("first"))
    with sqlite3.connect(tmp_path / "flowrra.db") as conn:
        for bad_id, raw in (("no-id", '{"name": "pkg.job"}'), ("list", "[1, 2]")):
            conn.execute("INSERT INTO flowrra_tasks (id, queue, priority, state, ready_at, payload) "
                         "VALUES (?, 'default', 0, 0, 0, ?)", (bad_id, raw))
    conn.close()
    await broker.enqueue(task("last"))
    waiters = [asyncio.create_task(broker.dequeue(["default"], "w", timeout=0.5)) for _ in range(4)]
    got = [t.id for t in await asyncio.gather(*waiters) if t is not None]
    assert got == ["first", "last"]
    letters = {d.task_id: d for d in await broker.list_dead_letters()}
    assert set(letters) == {"no-id", "list"}
    assert letters["no-id"].task_name == "pkg.job" and letters["no-id"].payload is None
    assert letters["list"].raw == "[1, 2]" and "decode" in letters["list"].error
    await broker.close()


# -- locking ------------------------------------------------------------------------------
def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_briefly_locked_file_delays_instead_of_failing(db_url, tmp_path):
    broker = SQLiteBroker(db_url)
    await broker.connect()
    held = threading.Event()
    holder = asyncio.create_task(asyncio.to_thread(_hold_write_lock, tmp_path / "flowrra.db", 0.3, held))
    await asyncio.to_thread(held.wait, 5)
    start = time.monotonic()
    await broker.enqueue(task("patient"))
    assert time.monotonic() - start >= 0.2
    await holder
    assert (await broker.dequeue(["default"], "w", timeout=1)).id == "patient"
    await broker.close()


async def test_a_lock_held_too_long_is_a_clear_error(db_url, tmp_path):
    broker = SQLiteBroker(db_url, lock_timeout=0.2)
    await broker.connect()
    held = threading.Event()
    holder = asyncio.create_task(asyncio.to_thread(_hold_write_lock, tmp_path / "flowrra.db", 1.0, held))
    await asyncio.to_thread(held.wait, 5)
    with pytest.raises(BackendError, match="stayed locked by another process"):
        await broker.enqueue(task("impatient"))
    await holder
    await broker.enqueue(task("later"))  # the broker is still usable
    await broker.close()


# -- group commit -------------------------------------------------------------------------
def _slow(conn: sqlite3.Connection) -> None:
    time.sleep(0.1)


def _insert_worker(conn: sqlite3.Connection, worker_id: str) -> None:
    conn.execute("INSERT INTO flowrra_workers (id, info, expires_at) VALUES (?, '{}', 0)", (worker_id,))


def _boom(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO flowrra_workers (id, info, expires_at) VALUES ('doomed', '{}', 0)")
    raise RuntimeError("boom")


def _worker_ids(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM flowrra_workers ORDER BY id")]


async def test_a_failing_job_does_not_undo_the_jobs_committed_with_it(db_url):
    db = SQLiteDatabase.acquire(db_url)
    try:
        await db.ready()
        blocker = db.write(_slow)  # the next three queue up behind it and share a transaction
        jobs = [db.write(_insert_worker, "a"), db.write(_boom), db.write(_insert_worker, "b")]
        await blocker
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], RuntimeError)
        assert await db.read(_worker_ids) == ["a", "b"]
    finally:
        await db.release()


# -- lifetime ------------------------------------------------------------------------------
async def test_close_releases_the_file_and_its_thread(db_url, tmp_path):
    broker, backend, transport = SQLiteBroker(db_url), SQLiteBackend(db_url), SQLiteTransport(db_url)
    await broker.connect()
    await backend.connect()
    await transport.publish({"n": 1})
    await transport.listen(lambda event: None)
    waiting = asyncio.create_task(broker.dequeue(["default"], "w", timeout=30))
    await wait_until(lambda: waiting_callers(broker._consumers) == 1, message="the dequeue to wait")
    path = str((tmp_path / "flowrra.db").resolve())
    assert path in SQLiteDatabase._registry
    start = time.monotonic()
    await transport.close()
    await backend.close()
    await broker.close()
    assert time.monotonic() - start < 1.0  # a waiting consumer does not hold up close()
    assert await waiting is None
    assert path not in SQLiteDatabase._registry
    assert not [t for t in threading.enumerate() if t.name == f"flowrra-sqlite:{path}"]
    await broker.connect()  # and it can be opened again
    await broker.close()


async def test_dedupe_memory_is_pruned_to_its_window(db_url, monkeypatch):
    broker = SQLiteBroker(db_url, dedupe_window=2)
    await broker.connect()
    for name in ("a", "b", "c"):
        assert await broker.enqueue(task(name), dedupe=True)
        got = await broker.dequeue(["default"], "w", timeout=1)
        await broker.ack(got)
        broker._next_prune = 0.0  # prune on every call instead of once a minute
    assert await broker.enqueue(task("c"), dedupe=True) is False  # still remembered
    assert await broker.enqueue(task("a"), dedupe=True) is True  # pruned: queued again
    await broker.close()


def _use_inherited_broker(broker: SQLiteBroker, answers) -> None:
    try:
        asyncio.run(broker.stats())
        answers.put("no error")
    except BackendError as exc:
        answers.put(str(exc))


async def test_a_forked_child_is_told_to_open_its_own_connection(db_url):
    import multiprocessing

    broker = SQLiteBroker(db_url)
    await broker.connect()
    try:
        context = multiprocessing.get_context("fork")
        answers = context.Queue()
        child = context.Process(target=_use_inherited_broker, args=(broker, answers))
        await asyncio.to_thread(child.start)
        answer = await asyncio.to_thread(answers.get, True, 30)
        await asyncio.to_thread(child.join, 30)
        assert "opened before this process was forked" in answer
        assert (await broker.stats())["queued"] == 0  # the parent is unaffected
    finally:
        await broker.close()


def test_an_app_can_be_reused_across_asyncio_run_calls(db_url):
    """Scripts call asyncio.run per operation: nothing may stay bound to a finished loop."""
    app = Flowrra.from_urls(broker=db_url)

    @app.task(name="double")
    async def double(x: int) -> int:
        return x * 2

    first = asyncio.run(app.submit("double", 1))
    second = asyncio.run(app.submit("double", 2))

    async def work() -> list[int]:
        await app.start()
        try:
            return [(await app.wait_for_result(i, timeout=10)).result for i in (first, second)]
        finally:
            await app.stop()

    assert asyncio.run(work()) == [2, 4]
    assert asyncio.run(work()) == [2, 4]  # and once more on a fresh loop after a stop
