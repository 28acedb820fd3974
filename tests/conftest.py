"""Shared fixtures. Service-backed tests each get their own key prefix / file / schema."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

REDIS_URL = os.environ.get("FLOWRRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("FLOWRRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("FLOWRRA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                     interval: float = 0.01, message: str = "condition") -> None:
    """Poll ``predicate`` until true; fail the test with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def waiting_callers(coalescers: Mapping[Any, Any]) -> int:
    """How many dequeue calls wait in a broker's ClaimCoalescers (Redis ``_coalescers``,
    SQLite ``_consumers``). A registered caller gets the next task claimed for it."""
    return sum(1 for coalescer in coalescers.values()
               for waiter in coalescer._waiters if not waiter.done())


@pytest.fixture
def tmp_sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'flowrra.db'}"  # absolute path -> sqlite:////...
