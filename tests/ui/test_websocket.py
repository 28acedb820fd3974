"""In-process sockets: FastAPI (Starlette TestClient) and Quart (its test client).

Each test holds the worker back until the ``pending`` frame has arrived and
holds the task on a gate until ``running`` has arrived, so the order of frames
is deterministic (the stream keeps only the latest state per task, so a client
that reads late could legitimately skip an intermediate state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from flowrra import Flowrra
from flowrra.ui import AuthError
from tests.ui.harness import PREFIX, UIOptions, build_app, forget, quart_app

pytestmark = pytest.mark.timeout(60)


def task_frame(raw: str, task_id: str) -> dict[str, Any] | None:
    frame = json.loads(raw)
    if frame.get("type") == "task.update" and frame["task"]["task_id"] == task_id:
        return frame["task"]
    return None


def header_auth(request: Any) -> bool:
    if "x-token" not in request.headers:
        raise AuthError(401, "Log in first")
    return request.headers["x-token"] == "ok"


# -- FastAPI --------------------------------------------------------------------------------
def fastapi_app(app: Flowrra, auth: Callable[[Any], Any] | None = None,
                service: Any = None) -> Any:
    from fastapi import FastAPI

    from flowrra.ui.fastapi import create_router

    @contextlib.asynccontextmanager
    async def lifespan(_: Any):
        await app.start(consume=False)
        yield
        await app.stop()
        forget(app)

    web = FastAPI(lifespan=lifespan)
    web.include_router(create_router(app, auth=auth, service=service), prefix=PREFIX)
    return web


def next_task_state(ws: Any, task_id: str) -> dict[str, Any]:
    while True:
        task = task_frame(ws.receive_text(), task_id)
        if task is not None:
            return task


def test_fastapi_socket_streams_pending_running_success() -> None:
    from fastapi.testclient import TestClient

    app = build_app()
    with TestClient(fastapi_app(app)) as client, client.websocket_connect(f"{PREFIX}/ws") as ws:
        hello = json.loads(ws.receive_text())
        assert hello["type"] == "hello" and hello["read_only"] is False
        task_id = client.portal.call(app.submit, "ui.gated", "fastapi")
        pending = next_task_state(ws, task_id)
        assert pending["status"] == "pending" and pending["args"] == ["fastapi"]
        client.portal.call(app.start)  # now consume
        running = next_task_state(ws, task_id)
        assert running["status"] == "running" and running["started_at"]
        client.portal.call(lambda: app.test_gates.setdefault("fastapi", asyncio.Event()).set())
        done = next_task_state(ws, task_id)
        assert done["status"] == "success" and done["result"] == "opened fastapi"
        ws.send_text(json.dumps({"type": "ping"}))
        assert json.loads(ws.receive_text()) == {"type": "pong"}


def test_fastapi_socket_auth() -> None:
    from fastapi.testclient import TestClient
    from starlette.testclient import WebSocketDenialResponse

    app = build_app()
    with TestClient(fastapi_app(app, auth=header_auth)) as client:
        for headers, status in (({}, 401), ({"x-token": "bad"}, 403)):
            with pytest.raises(WebSocketDenialResponse) as refused, \
                    client.websocket_connect(f"{PREFIX}/ws", headers=headers):
                pass
            assert refused.value.status_code == status
            assert refused.value.json()["status"] == status
        with client.websocket_connect(f"{PREFIX}/ws", headers={"x-token": "ok"}) as ws:
            assert json.loads(ws.receive_text())["type"] == "hello"


def test_fastapi_socket_unsubscribes_on_disconnect() -> None:
    from fastapi.testclient import TestClient

    from flowrra.events import event_bus

    app = build_app()
    with TestClient(fastapi_app(app)) as client:
        before = event_bus.subscriber_count
        with client.websocket_connect(f"{PREFIX}/ws") as ws:
            ws.receive_text()
            assert event_bus.subscriber_count == before + 1
        deadline = client.portal.call(_wait_for_count, before)
        assert deadline, "the socket's subscription was not removed after disconnect"


async def _wait_for_count(count: int) -> bool:
    from flowrra.events import event_bus

    for _ in range(500):
        if event_bus.subscriber_count == count:
            return True
        await asyncio.sleep(0.01)
    return False


# -- Quart ----------------------------------------------------------------------------------
async def quart_next_state(ws: Any, task_id: str) -> dict[str, Any]:
    while True:
        task = task_frame(await asyncio.wait_for(ws.receive(), 10), task_id)
        if task is not None:
            return task


async def test_quart_socket_streams_pending_running_success() -> None:
    app = build_app()
    await app.start(consume=False)
    try:
        client = quart_app(app, UIOptions()).test_client()
        async with client.websocket(f"{PREFIX}/ws") as ws:
            hello = json.loads(await asyncio.wait_for(ws.receive(), 10))
            assert hello["type"] == "hello"
            task_id = await app.submit("ui.gated", "quart")
            assert (await quart_next_state(ws, task_id))["status"] == "pending"
            await app.start()
            assert (await quart_next_state(ws, task_id))["status"] == "running"
            app.test_gates.setdefault("quart", asyncio.Event()).set()
            done = await quart_next_state(ws, task_id)
            assert done["status"] == "success" and done["result"] == "opened quart"
    finally:
        await app.stop()
        forget(app)


async def test_quart_socket_auth() -> None:
    from quart.testing.connections import WebsocketResponseError

    app = build_app()
    await app.start(consume=False)
    try:
        client = quart_app(app, UIOptions(auth=header_auth)).test_client()
        for headers, status in (({}, 401), ({"x-token": "bad"}, 403)):
            with pytest.raises(WebsocketResponseError) as refused:
                async with client.websocket(f"{PREFIX}/ws", headers=headers) as ws:
                    await asyncio.wait_for(ws.receive(), 10)
            assert refused.value.response.status_code == status
        async with client.websocket(f"{PREFIX}/ws", headers={"x-token": "ok"}) as ws:
            assert json.loads(await asyncio.wait_for(ws.receive(), 10))["type"] == "hello"
    finally:
        await app.stop()
        forget(app)


# -- a relay that cannot listen (its broker is down) ------------------------------------------
@contextlib.contextmanager
def unreachable_relay():
    """An app on the bus whose Redis refuses connections: its relay can never start listening."""
    from flowrra import BrokerConfig, Config

    down = Flowrra(Config(broker=BrokerConfig("redis://127.0.0.1:1/0", socket_timeout=0.2)))
    try:
        yield down
    finally:
        forget(down)


def test_fastapi_socket_refused_with_503_when_the_relay_cannot_listen() -> None:
    from fastapi.testclient import TestClient
    from starlette.testclient import WebSocketDenialResponse

    from flowrra.events import event_bus
    from flowrra.ui import UIService

    app = build_app()
    service = UIService(app, subscribe_timeout=0.3)
    with unreachable_relay(), TestClient(fastapi_app(app, service=service)) as client:
        before = event_bus.subscriber_count
        with pytest.raises(WebSocketDenialResponse) as refused, \
                client.websocket_connect(f"{PREFIX}/ws"):
            pass
        assert refused.value.status_code == 503 and "broker" in refused.value.json()["error"]
        assert event_bus.subscriber_count == before, "the refused socket left no subscription"
        assert client.get(f"{PREFIX}/api/stats").status_code == 200, "the page can still poll"


async def test_quart_socket_refused_with_503_when_the_relay_cannot_listen() -> None:
    from quart import Quart
    from quart.testing.connections import WebsocketResponseError

    from flowrra.ui import UIService
    from flowrra.ui.flask import create_blueprint

    app = build_app()
    await app.start(consume=False)
    web = Quart(__name__)
    web.register_blueprint(create_blueprint(app, service=UIService(app, subscribe_timeout=0.3)),
                           url_prefix=PREFIX)
    try:
        with unreachable_relay():
            with pytest.raises(WebsocketResponseError) as refused:
                async with web.test_client().websocket(f"{PREFIX}/ws") as ws:
                    await asyncio.wait_for(ws.receive(), 10)
            assert refused.value.response.status_code == 503
    finally:
        await app.stop()
        forget(app)


# -- Origin (cross-site WebSocket hijacking) ---------------------------------------------------
FOREIGN = {"origin": "http://evil.example"}
SIBLING = {"origin": "http://testserver:8202"}  # another port of the same host


def test_fastapi_socket_refuses_foreign_origins() -> None:
    from starlette.testclient import TestClient, WebSocketDenialResponse

    app = build_app()
    with TestClient(fastapi_app(app)) as client:
        for headers in (FOREIGN, SIBLING):
            with pytest.raises(WebSocketDenialResponse) as refused, \
                    client.websocket_connect(f"{PREFIX}/ws", headers=headers):
                pass
            assert refused.value.status_code == 403
            assert "allowed_origins" in refused.value.json()["error"]
        with client.websocket_connect(f"{PREFIX}/ws", headers={"origin": "http://testserver"}) as ws:
            assert json.loads(ws.receive_text())["type"] == "hello"


def test_fastapi_socket_accepts_an_allowed_origin() -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from flowrra.ui.fastapi import create_router

    app = build_app()
    web = FastAPI()
    web.include_router(create_router(app, allowed_origins=["http://evil.example"]), prefix=PREFIX)
    try:
        with TestClient(web) as client, \
                client.websocket_connect(f"{PREFIX}/ws", headers=FOREIGN) as ws:
            assert json.loads(ws.receive_text())["type"] == "hello"
    finally:
        forget(app)


async def test_quart_socket_refuses_foreign_origins() -> None:
    from quart.testing.connections import WebsocketResponseError

    app = build_app()
    await app.start(consume=False)
    try:
        client = quart_app(app, UIOptions()).test_client()
        with pytest.raises(WebsocketResponseError) as refused:
            async with client.websocket(f"{PREFIX}/ws", headers=FOREIGN) as ws:
                await asyncio.wait_for(ws.receive(), 10)
        assert refused.value.response.status_code == 403
    finally:
        await app.stop()
        forget(app)
