"""Implementations under contract. Every broker / backend / transport must pass these suites.

Each implementation registers factories in its own module (``impl_<name>.py``):

``BROKERS`` / ``BACKENDS``
    ``{name: factory}`` where ``factory(path, **options)`` is an async context
    manager yielding a connected instance. Instances made from the *same* ``path``
    share one store (same key prefix / same file) — that is how the suites get a
    second process's view of a shared broker; a different path gives an isolated
    store. Everything the factory created is deleted when the last one exits.
``TRANSPORTS``
    ``{name: factory}`` where ``factory(path)`` is an async context manager
    yielding ``new()``: a callable returning a fresh transport instance (another
    "process") on one isolated channel. The factory closes them all on exit.
``INJECTORS`` (optional)
    ``{name: async fn(broker, task_id, raw_text, queue)}`` that puts an
    undecodable message into the broker's ready queue, bypassing ``enqueue``.
``WAITING``
    ``{name: fn(broker) -> bool}``: true once a ``dequeue`` call on ``broker`` is
    waiting for work, so a test can enqueue *after* a dequeue started without
    guessing how long that takes. Every broker implementation registers one.
``MARKS`` (optional)
    ``{name: [pytest marks]}`` applied to every test using that implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from flowrra.backends import InMemoryBackend
from flowrra.brokers import InMemoryBroker
from flowrra.transports import LocalTransport

Factory = Callable[..., contextlib.AbstractAsyncContextManager]


@contextlib.asynccontextmanager
async def memory_broker(path, **options) -> AsyncIterator[InMemoryBroker]:
    broker = InMemoryBroker(**options)
    await broker.connect()
    yield broker
    await broker.close()


@contextlib.asynccontextmanager
async def memory_backend(path, **options) -> AsyncIterator[InMemoryBackend]:
    backend = InMemoryBackend(**options)
    yield backend


@contextlib.asynccontextmanager
async def local_transports(path) -> AsyncIterator[Callable[[], LocalTransport]]:
    yield LocalTransport


BROKERS: dict[str, Factory] = {"memory": memory_broker}
BACKENDS: dict[str, Factory] = {"memory": memory_backend}
TRANSPORTS: dict[str, Factory] = {"memory": local_transports}
INJECTORS: dict[str, Callable[..., Any]] = {}
#: the in-memory dequeue creates its wake-up future when it finds nothing to take
WAITING: dict[str, Callable[[Any], bool]] = {"memory": lambda broker: broker._wakeup is not None}
MARKS: dict[str, list[Any]] = {}

# Durable implementations add themselves in their own modules (one line each here).
for _module in ("tests.contracts.impl_redis", "tests.contracts.impl_sqlite"):
    with contextlib.suppress(ModuleNotFoundError):
        _impl = __import__(_module, fromlist=["BROKERS", "BACKENDS"])
        BROKERS.update(getattr(_impl, "BROKERS", {}))
        BACKENDS.update(getattr(_impl, "BACKENDS", {}))
        TRANSPORTS.update(getattr(_impl, "TRANSPORTS", {}))
        INJECTORS.update(getattr(_impl, "INJECTORS", {}))
        WAITING.update(getattr(_impl, "WAITING", {}))
        MARKS.update(getattr(_impl, "MARKS", {}))


def _params(table: dict[str, Factory]) -> list[Any]:
    return [pytest.param(name, marks=MARKS.get(name, ()), id=name) for name in sorted(table)]


@pytest.fixture(params=_params(BROKERS))
def impl_name(request) -> str:
    return request.param


@pytest.fixture
def make_broker(impl_name, tmp_path):
    """``make_broker(path=None, **options)``: async context manager yielding a broker."""
    factory = BROKERS[impl_name]
    return lambda path=None, **options: factory(path or tmp_path, **options)


@pytest.fixture
def inject_raw(impl_name):
    """``await inject_raw(broker, task_id, raw, queue)``, or the test is skipped."""
    injector = INJECTORS.get(impl_name)
    if injector is None:
        pytest.skip(f"{impl_name} stores Task objects, not encoded messages")
    return injector


@pytest.fixture
def dequeue_waiting(impl_name) -> Callable[[Any], bool]:
    """``dequeue_waiting(broker)``: True once a dequeue on ``broker`` waits for work."""
    return WAITING[impl_name]


@pytest.fixture(params=_params(BACKENDS))
def make_backend(request, tmp_path):
    """``make_backend(path=None, **options)``: async context manager yielding a backend."""
    factory = BACKENDS[request.param]
    return lambda path=None, **options: factory(path or tmp_path, **options)


@pytest.fixture(params=_params(TRANSPORTS))
def make_transports(request, tmp_path):
    """``make_transports()``: async context manager yielding ``new()`` -> transport."""
    factory = TRANSPORTS[request.param]
    return lambda path=None: factory(path or tmp_path)
