"""Real sockets: each example under its real ASGI server, tasks run by a separate worker via Redis.

For every example (FastAPI/uvicorn, Quart/hypercorn, Django/daphne, Django/uvicorn
and Django/daphne with a ``channels_redis`` layer) a ``websockets`` client
connects to ``<mount>/ws``, this process submits a task on the stack's Redis
prefix, and the client must see that task's frames pending -> running -> success,
in that order, each once, with the result in the last one. In the layer run the
test also checks that the server's consumer really listens on its channels_redis
channel, so the run cannot silently fall back to no layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
import redis

from tests.conftest import REDIS_URL
from tests.e2e.conftest import producer_for, running_stack
from tests.e2e.servers import Stack
from tests.e2e.sockets import live_socket, task_frames

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module", params=["fastapi-uvicorn", "quart-hypercorn", "django-daphne",
                                        "django-uvicorn", "django-daphne-layer"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(request.param, tmp_path_factory) as started:
        yield started


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1"])
async def test_a_foreign_page_cannot_open_the_socket(stack: Stack, origin: str) -> None:
    """Cross-site WebSocket hijacking: a page on another origin (or port) is refused."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        async with connect(stack.ws_url, origin=origin, open_timeout=15):
            pass
    assert refused.value.response.status_code == 403, stack.logs()


async def test_frames_arrive_in_order_on_every_socket(stack: Stack) -> None:
    example = stack.example
    async with producer_for(stack) as producer, live_socket(stack.ws_url) as first, \
            live_socket(stack.ws_url) as second:
        if "REDIS_URL" in example.env:  # this run must really go through channels_redis
            await assert_listening_on_layer(stack)
        task_id = await producer.submit(example.task, *example.args)
        seen = [await task_frames(ws, task_id, context=stack.logs()) for ws in (first, second)]

    for frames in seen:
        # each state once per subscriber, in order, though a separate process ran the task
        assert [f["status"] for f in frames] == ["pending", "running", "success"], (frames, stack.logs())
        assert frames[-1]["result"] == example.result
        assert frames[-1]["task_name"] == example.task
        assert all(f["submitted_at"] == frames[0]["submitted_at"] for f in frames)
        assert frames[1]["started_at"] and frames[2]["finished_at"]

    # the HTTP side of the same server reads the record the worker stored
    async with httpx.AsyncClient(base_url=stack.ui_url, timeout=10) as client:
        response = await client.get(f"/api/executions/{task_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"



async def assert_listening_on_layer(stack: Stack) -> None:
    """The server holds a Redis connection blocked in BZPOPMIN: its consumer's channels_redis channel."""
    assert stack.server is not None
    server = psutil.Process(stack.server.pid)
    client = redis.Redis.from_url(REDIS_URL)
    redis_port = client.connection_pool.connection_kwargs["port"]

    def blocked_in_bzpopmin() -> bool:
        ports = {f"127.0.0.1:{c.laddr.port}" for c in server.net_connections("tcp")
                 if c.raddr and c.raddr.port == redis_port}
        return any(c["addr"] in ports and c["cmd"] == "bzpopmin" for c in client.client_list())

    try:
        deadline = time.monotonic() + 15
        while not blocked_in_bzpopmin():
            assert time.monotonic() < deadline, "no consumer of the server listens on the layer"
            await asyncio.sleep(0.1)
    finally:
        client.close()
