"""Fixtures for end-to-end tests: real servers on loopback ports, Redis, and a test-side producer.

Servers are the expensive part (a second or two each), so test modules share one
stack per example through module-scoped fixtures built with :func:`running_stack`.
A stack has a Redis key prefix of its own, which every process of it uses, and
tests tell their tasks apart by task id. The test process submits through its
own :class:`~flowrra.Flowrra` app on the stack's prefix (:func:`producer_for`), as
a separate web or script process would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrra import BrokerConfig, Config, Flowrra
from flowrra.events import event_bus
from tests.conftest import REDIS_URL
from tests.e2e.servers import EXAMPLES, Stack

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def delete_prefix(prefix: str) -> None:
    """Remove every Redis key a stack wrote under its prefix."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()


@contextlib.contextmanager
def running_stack(name: str, tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[Stack]:
    """Start the example ``name`` (server + worker) and stop it and wipe its keys afterwards."""
    workdir = tmp_path_factory.mktemp(name)
    stack = Stack(EXAMPLES[name], workdir, **options)
    try:
        yield stack.start()
    finally:
        stack.stop()
        delete_prefix(stack.key_prefix)


def _stand_in() -> Any:
    """A fresh function per registration: the test process only submits, workers run the real task."""
    async def stand_in(*args: Any, **kwargs: Any) -> None:
        return None

    return stand_in


@contextlib.asynccontextmanager
async def producer_for(stack: Stack, *task_names: str) -> AsyncIterator[Flowrra]:
    """A connected app on the stack's prefix that knows ``task_names`` (default: the stack's task)."""
    app = Flowrra(Config(broker=BrokerConfig(REDIS_URL, queue_key=stack.key_prefix)))
    for name in task_names or (stack.example.task,):
        app.task(name=name)(_stand_in())
    await app.connect()
    try:
        yield app
    finally:
        await app.stop()
        event_bus.remove_relay(app._relay)
