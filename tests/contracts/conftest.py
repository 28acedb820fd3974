"""Implementations under contract. Every broker / backend / transport must pass these suites.

Each implementation registers a factory here: an async context manager factory
that yields a fresh, isolated instance (own key prefix or file) and cleans up.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from flowrra.backends import InMemoryBackend
from flowrra.brokers import InMemoryBroker

BrokerFactory = Callable[..., contextlib.AbstractAsyncContextManager]


@contextlib.asynccontextmanager
async def memory_broker(tmp_path, **options) -> AsyncIterator[InMemoryBroker]:
    broker = InMemoryBroker(**options)
    await broker.connect()
    yield broker
    await broker.close()


@contextlib.asynccontextmanager
async def memory_backend(tmp_path, **options) -> AsyncIterator[InMemoryBackend]:
    backend = InMemoryBackend(**options)
    yield backend


BROKERS: dict[str, BrokerFactory] = {"memory": memory_broker}
BACKENDS: dict[str, BrokerFactory] = {"memory": memory_backend}

# Durable implementations add themselves in their own modules (one line each here).
for _module in ("tests.contracts.impl_redis", "tests.contracts.impl_sqlite"):
    with contextlib.suppress(ModuleNotFoundError):
        _impl = __import__(_module, fromlist=["BROKERS", "BACKENDS"])
        BROKERS.update(getattr(_impl, "BROKERS", {}))
        BACKENDS.update(getattr(_impl, "BACKENDS", {}))


@pytest.fixture(params=sorted(BROKERS))
def make_broker(request, tmp_path):
    """Call ``make_broker(**options)`` to get an async context manager yielding a broker."""
    factory = BROKERS[request.param]
    return lambda **options: factory(tmp_path, **options)


@pytest.fixture(params=sorted(BACKENDS))
def make_backend(request, tmp_path):
    factory = BACKENDS[request.param]
    return lambda **options: factory(tmp_path, **options)
