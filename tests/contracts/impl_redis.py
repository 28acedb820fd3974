"""Redis implementations under contract (each test gets its own key prefix, deleted afterwards)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from flowrra.backends.redis import RedisBackend
from flowrra.brokers.redis import RedisBroker
from flowrra.transports.redis import RedisTransport
from tests.conftest import REDIS_URL, waiting_callers

_users: dict[str, int] = {}


def prefix_for(path: Path) -> str:
    """Same path -> same prefix (a second view of one store); different path -> isolated."""
    return "flowrra-test-" + hashlib.sha1(str(path).encode()).hexdigest()[:12]


async def delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start:start + 500])
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _namespace(path: Path) -> AsyncIterator[str]:
    prefix = prefix_for(path)
    _users[prefix] = _users.get(prefix, 0) + 1
    try:
        yield prefix
    finally:
        _users[prefix] -= 1
        if _users[prefix] == 0:
            del _users[prefix]
            await delete_prefix(prefix)


@contextlib.asynccontextmanager
async def redis_broker(path: Path, **options) -> AsyncIterator[RedisBroker]:
    async with _namespace(path) as prefix:
        broker = RedisBroker(REDIS_URL, queue_key=prefix, **options)
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.close()


@contextlib.asynccontextmanager
async def redis_backend(path: Path, **options) -> AsyncIterator[RedisBackend]:
    async with _namespace(path) as prefix:
        backend = RedisBackend(REDIS_URL, key_prefix=prefix, **options)
        await backend.connect()
        try:
            yield backend
        finally:
            await backend.close()


@contextlib.asynccontextmanager
async def redis_transports(path: Path) -> AsyncIterator[Callable[[], RedisTransport]]:
    made: list[RedisTransport] = []

    def new() -> RedisTransport:
        transport = RedisTransport(REDIS_URL, key_prefix=prefix_for(path))
        made.append(transport)
        return transport

    try:
        yield new
    finally:
        for transport in made:
            await transport.close()


async def inject_raw(broker: RedisBroker, task_id: str, raw: str, queue: str) -> None:
    """Write an undecodable message straight into the broker's keys, as corruption would."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        header = f"{await client.incr(f'{broker.prefix}:seq'):016x}"
        await client.hset(f"{broker.prefix}:msg", task_id, header + raw)
        await client.zadd(f"{broker.prefix}:q:{queue}", {header + task_id: 0})
        await client.sadd(f"{broker.prefix}:queues", queue)
        await client.rpush(f"{broker.prefix}:wake:{queue}", "1")
    finally:
        await client.aclose()


BROKERS = {"redis": redis_broker}
BACKENDS = {"redis": redis_backend}
TRANSPORTS = {"redis": redis_transports}
INJECTORS = {"redis": inject_raw}
WAITING = {"redis": lambda broker: waiting_callers(broker._coalescers) > 0}
MARKS = {"redis": [pytest.mark.redis]}
