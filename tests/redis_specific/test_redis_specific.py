"""Redis-only behaviour beyond the shared contracts: URLs, sharing a pool, errors when the
server is away, surviving a server restart, and the Lua paths the contracts cannot reach."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from flowrra import BackendConfig, BrokerConfig, Config, Flowrra
from flowrra.backends import get_backend
from flowrra.backends.redis import RedisBackend
from flowrra.brokers import get_broker
from flowrra.brokers.redis import RedisBroker
from flowrra.exceptions import BackendError
from flowrra.redis_client import RedisSettings, split_url
from flowrra.task import Task, TaskResult, TaskStatus, utcnow
from flowrra.transports.redis import RedisTransport
from tests.conftest import REDIS_URL, unique, wait_until, waiting_callers
from tests.contracts.impl_redis import delete_prefix

pytestmark = pytest.mark.redis


@pytest.fixture
async def prefix():
    name = unique("flowrra-test")
    yield name
    await delete_prefix(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server owned by one test (spare port or unix socket), data under tmp."""

    def __init__(self, directory: Path, unix: bool = False) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server binary not installed")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = 0 if unix else free_port()
        self.socket = directory / "redis.sock" if unix else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0" if self.socket else f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
        if self.socket:
            args += ["--unixsocket", str(self.socket)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.02)

    def _ready(self) -> bool:
        try:
            if self.socket:
                sock = socket.socket(socket.AF_UNIX)
                sock.settimeout(0.5)
                sock.connect(str(self.socket))
            else:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            with sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def make_task(**fields) -> Task:
    return Task(id=unique("task"), name="job", submitted_at=utcnow(), **fields)


# -- URLs and configuration -----------------------------------------------------------
def test_url_parsing_and_key_prefix():
    assert split_url("redis://h:1/2?key_prefix=app1&ssl_cert_reqs=none") == (
        "redis://h:1/2?ssl_cert_reqs=none", "app1")
    assert split_url("rediss://u:p@h:6380/0") == ("rediss://u:p@h:6380/0", None)
    assert split_url("unix:///run/redis.sock?db=3") == ("unix:///run/redis.sock?db=3", None)
    with pytest.raises(ValueError, match=r"redis://, rediss://, unix://"):
        split_url("http://localhost")
    with pytest.raises(ValueError, match="not a Redis URL"):
        split_url("localhost:6379")
    settings = RedisSettings.from_url("redis://u:secret@h:1/0", key_prefix="p")
    assert settings.public_url() == "redis://u:secret@h:1/0?key_prefix=p"
    assert "secret" not in settings.display()
    with pytest.raises(ValueError, match="max_connections"):
        RedisSettings.from_url("redis://h", max_connections=0)


def test_factories_build_redis_components_sharing_one_namespace():
    broker = get_broker("redis://localhost:6379/0?key_prefix=app7")
    assert isinstance(broker, RedisBroker) and broker.prefix == "app7" and broker.durable
    backend = get_backend(broker.default_backend_url())
    assert isinstance(backend, RedisBackend) and backend.prefix == "app7"
    transport = broker.event_transport()
    assert isinstance(transport, RedisTransport) and transport.settings.prefix == "app7"
    app = Flowrra(Config(broker=BrokerConfig("redis://localhost:6379/0", queue_key="app8"),
                         backend=None))
    assert isinstance(app.backend, RedisBackend) and app.backend.prefix == "app8"
    app2 = Flowrra(Config(broker=BrokerConfig("redis://localhost:6379/0", socket_timeout=2.0,
                                              max_connections=7),
                          backend=BackendConfig("redis://localhost:6379/1", ttl=60)))
    assert app2.broker.settings.socket_timeout == 2.0
    assert app2.broker.settings.max_connections == 7
    assert app2.backend.ttl == 60 and app2.backend.prefix == "flowrra"
    with pytest.raises(ValueError, match="visibility_timeout"):
        RedisBroker("redis://localhost", visibility_timeout=0)
    with pytest.raises(ValueError, match="ttl"):
        RedisBackend("redis://localhost", ttl=-1)


async def test_components_of_one_url_share_one_pool(prefix):
    url = f"{REDIS_URL}?key_prefix={prefix}"
    broker, backend = RedisBroker(url), RedisBackend(url)
    await broker.connect()
    await backend.connect()
    try:
        assert broker._conn.client is backend._conn.client
    finally:
        await broker.close()
        await backend.close()


async def test_many_waiting_dequeues_share_one_blocking_connection(prefix):
    broker = RedisBroker(REDIS_URL, queue_key=prefix, max_connections=5)
    await broker.connect()
    try:
        waiters = [asyncio.create_task(broker.dequeue(["default"], "w", timeout=10))
                   for _ in range(100)]
        await wait_until(lambda: waiting_callers(broker._coalescers) == 100,
                         message="100 dequeues to wait")
        assert not any(w.done() for w in waiters)  # 100 waiting callers on a 5-connection pool
        tasks = [make_task(args=(i,)) for i in range(100)]
        await broker.enqueue_many(tasks)
        got = await asyncio.wait_for(asyncio.gather(*waiters), 20)
        assert sorted(t.id for t in got) == sorted(t.id for t in tasks)
    finally:
        await broker.close()


# -- Lua paths the contracts do not reach --------------------------------------------------
async def test_dead_letters_are_capped_newest_kept(prefix):
    broker = RedisBroker(REDIS_URL, queue_key=prefix, max_dead_letters=3)
    await broker.connect()
    try:
        tasks = [make_task(args=(i,)) for i in range(5)]
        await broker.enqueue_many(tasks)
        for _ in tasks:
            await broker.dead_letter(await broker.dequeue(["default"], "w", timeout=1), "x")
        assert [d.task_id for d in await broker.list_dead_letters()] == [
            t.id for t in reversed(tasks[2:])]
        assert (await broker.stats())["dead"] == 3
    finally:
        await broker.close()


async def test_undecodable_delayed_message_is_dead_lettered_on_promotion(prefix):
    broker = RedisBroker(REDIS_URL, queue_key=prefix)
    await broker.connect()
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.hset(f"{prefix}:msg", "bad-1", f"{1:016x}not json at all")
        await client.zadd(f"{prefix}:delayed", {"bad-1": 0})
        good = make_task()
        await broker.enqueue(good)
        assert (await broker.dequeue(["default"], "w", timeout=2)).id == good.id
        letters = await broker.list_dead_letters()
        assert [(d.task_id, d.raw, d.payload) for d in letters] == [
            ("bad-1", "not json at all", None)]
        assert letters[0].failed_at.tzinfo is not None
    finally:
        await client.aclose()
        await broker.close()


async def test_release_only_hands_back_leases_the_worker_holds(prefix):
    broker = RedisBroker(REDIS_URL, queue_key=prefix)
    await broker.connect()
    try:
        await broker.enqueue(make_task())
        held = await broker.dequeue(["default"], "worker-a", timeout=1)
        impostor = Task(held.id, held.name, receipt="worker-b")
        await broker.release([impostor])
        assert (await broker.stats())["leased"] == 1
        await broker.release([held])
        assert (await broker.stats()) == {"queued": 1, "delayed": 0, "leased": 0, "dead": 0}
    finally:
        await broker.close()


async def test_backend_index_uses_server_time_and_stays_ordered_in_one_batch(prefix):
    backend = RedisBackend(REDIS_URL, key_prefix=prefix)
    await backend.connect()
    try:
        records = [TaskResult(unique("r"), TaskStatus.SUCCESS, "job") for _ in range(50)]
        await asyncio.gather(*(backend.store(r) for r in records))  # one batch
        listed = await backend.list_by_status("success")
        assert [r.task_id for r in listed] == [r.task_id for r in reversed(records)]
    finally:
        await backend.close()


# -- the server going away -------------------------------------------------------------
async def test_unreachable_server_gives_a_clear_backend_error():
    url = f"redis://127.0.0.1:{free_port()}/0"
    broker = RedisBroker(url, socket_timeout=0.5)
    backend = RedisBackend(url, socket_timeout=0.5)
    try:
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"unreachable.*socket_timeout"):
            await broker.enqueue(make_task())
        with pytest.raises(BackendError, match="result backend"):
            await backend.get("x")
        assert time.monotonic() - start < 10
        assert await broker.dequeue(["default"], "w", timeout=0.3) is None  # waits, no crash
    finally:
        await broker.close()
        await backend.close()


async def test_unix_socket_url(tmp_path):
    server = OwnRedis(tmp_path / "unix", unix=True)
    server.start()
    broker = RedisBroker(server.url)
    try:
        await broker.connect()
        task = make_task()
        await broker.enqueue(task)
        assert await broker.dequeue(["default"], "w", timeout=2) == task
    finally:
        await broker.close()
        server.stop()


async def test_broker_and_backend_carry_on_after_a_server_restart(own_redis):
    broker = RedisBroker(own_redis.url, socket_timeout=10)
    backend = RedisBackend(own_redis.url, socket_timeout=10)
    await broker.connect()
    await backend.connect()
    try:
        before = make_task()
        await broker.enqueue(before)
        pending = TaskResult(before.id, TaskStatus.PENDING, "job")
        await backend.store(pending)
        waiter = asyncio.create_task(backend.wait_for(before.id, timeout=60))
        waiting_dequeue = asyncio.create_task(broker.dequeue(["nothing-yet"], "w", timeout=30))

        def both_waiting() -> bool:
            subscription = backend._subscription
            return (before.id in backend._waiters and subscription is not None
                    and subscription.confirmed and waiting_callers(broker._coalescers) == 1)

        await wait_until(both_waiting, message="the result wait and the dequeue to be waiting")

        own_redis.stop()
        restarted = asyncio.get_running_loop().run_in_executor(None, _restart_later, own_redis)
        after = make_task()
        await broker.enqueue(after)  # retried with backoff until the server is back
        await restarted
        await broker.enqueue(make_task(queue="nothing-yet"))
        assert (await asyncio.wait_for(waiting_dequeue, 30)).queue == "nothing-yet"
        got = [await broker.dequeue(["default"], "w", timeout=5) for _ in range(2)]
        assert [t.id for t in got] == [before.id, after.id]  # nothing lost (append-only file)

        done = pending.copy()
        done.status = TaskStatus.SUCCESS
        await backend.store(done)
        assert (await asyncio.wait_for(waiter, 30)).status is TaskStatus.SUCCESS
    finally:
        await broker.close()
        await backend.close()


def _restart_later(server: OwnRedis) -> None:
    time.sleep(0.5)
    server.start()


async def test_transport_listener_resubscribes_after_a_restart(own_redis):
    sender, receiver = RedisTransport(own_redis.url), RedisTransport(own_redis.url)
    seen: list[dict] = []

    async def inbox(event: dict) -> None:
        seen.append(event)

    try:
        await receiver.listen(inbox)
        own_redis.stop()
        own_redis.start()

        async def delivered() -> bool:
            await sender.publish({"type": "ping"})
            with contextlib.suppress(Exception):
                await sender._publisher.close()
            return bool(seen)

        await wait_until(delivered, timeout=20, interval=0.2, message="delivery after restart")
    finally:
        await sender.close()
        await receiver.close()


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True], "ü": "x</y\u2028"}, {True: 1, None: 2, 7: 3}, [2**70, -0.0, 1e-7],
    [], {}, "plain",
])
def test_fast_encoder_agrees_with_the_standard_one(value):
    import json

    from flowrra.redis_client import fast_dumps
    from flowrra.serialization import dumps

    assert json.loads(fast_dumps(value)) == json.loads(dumps(value))


def test_fast_encoder_refuses_what_json_refuses():
    from flowrra.redis_client import fast_dumps

    with pytest.raises(ValueError):
        fast_dumps({"x": float("nan")})
    with pytest.raises(TypeError):
        fast_dumps({"x": b"bytes"})
    with pytest.raises(TypeError):
        fast_dumps({"x": object()})


def test_components_survive_a_new_event_loop_per_call(prefix):
    """Sync frameworks may run each call in its own ``asyncio.run``; nothing may stick to a dead loop."""
    broker = RedisBroker(REDIS_URL, queue_key=prefix)
    backend = RedisBackend(REDIS_URL, key_prefix=prefix)
    sender, receiver = RedisTransport(REDIS_URL, key_prefix=prefix), RedisTransport(
        REDIS_URL, key_prefix=prefix)

    async def one_call(n: int) -> None:
        task = make_task(args=(n,))
        assert await broker.enqueue(task)
        got = await broker.dequeue(["default"], "w", timeout=5)
        assert got is not None and got.id == task.id
        await broker.ack(got)
        record = TaskResult(task.id, TaskStatus.RUNNING, "job")
        await backend.store(record)
        waiter = asyncio.create_task(backend.wait_for(task.id, timeout=10))
        await wait_until(lambda: task.id in backend._waiters, message="wait_for to register")
        done = record.copy()
        done.status = TaskStatus.SUCCESS
        await backend.store(done)
        assert (await waiter).status is TaskStatus.SUCCESS
        seen: list[dict] = []

        async def inbox(event: dict) -> None:
            seen.append(event)

        await receiver.listen(inbox)
        await sender.publish({"type": "x", "n": n})
        await wait_until(lambda: seen, timeout=10, message="event on this loop")
        await receiver.stop_listening()

    for n in range(3):
        asyncio.run(one_call(n))


async def test_a_connection_the_server_closed_is_replaced_not_reused(prefix):
    """Connections kept at hand skip redis-py's readiness probe: a dead one must still go."""
    backend = RedisBackend(REDIS_URL, key_prefix=prefix)
    await backend.connect()
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        conn = backend._conn
        own_id = await conn.command("CLIENT", "ID")  # the connection now kept at hand
        assert await admin.execute_command("CLIENT", "KILL", "ID", own_id) == 1
        await backend.store(TaskResult("t1", TaskStatus.SUCCESS, "x", 42, submitted_at=utcnow()))
        got = await backend.get("t1")
        assert got is not None and got.result == 42
        assert await conn.command("CLIENT", "ID") != own_id
    finally:
        await admin.aclose()
        await backend.close()
