"""flowrra 0.1.8's UI adapter names (UI.md, docs/WEBSOCKET_SETUP.md) on our dashboard.

The adapters are thin wrappers: each test checks that the wrapper serves the
dashboard and keeps the options (so the security defaults) of what it wraps.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from flowrra.ui import AuthError
from tests.ui.harness import PREFIX, build_app, forget
from tests.ui.harness_django import _staff_client  # configures Django at collection time

pytestmark = pytest.mark.timeout(60)


def header_auth(request: Any) -> bool:
    if "x-token" not in request.headers:
        raise AuthError(401, "Log in first")
    return request.headers["x-token"] == "ok"


async def test_fastapi_adapter_get_routes_is_create_router() -> None:
    from fastapi import APIRouter, FastAPI

    from flowrra.ui.fastapi import FastAPIAdapter

    app = build_app()
    adapter = FastAPIAdapter(app, auth=header_auth)
    router = adapter.get_routes()
    assert isinstance(router, APIRouter) and adapter.get_routes() is router
    web = FastAPI()
    web.include_router(router, prefix="/admin/tasks")
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/admin/tasks/api/stats")).status_code == 401
        ok = await client.get("/admin/tasks/api/stats", headers={"x-token": "ok"})
        assert ok.status_code == 200 and "tasks" in ok.json()
    await app.stop()
    forget(app)


@pytest.mark.parametrize("framework", ["quart", "flask"])
async def test_flask_adapter_get_routes_is_create_blueprint(framework: str) -> None:
    from flowrra.ui.flask import FlaskAdapter, FlowrraBlueprint

    app = build_app()
    adapter = FlaskAdapter(app, read_only=True)
    blueprint = adapter.get_routes()
    assert isinstance(blueprint, FlowrraBlueprint) and adapter.get_blueprint() is blueprint
    assert blueprint.service.read_only
    if framework == "quart":
        from quart import Quart

        web = Quart(__name__)
        web.register_blueprint(blueprint, url_prefix=PREFIX)
        reply = await web.test_client().get(f"{PREFIX}/api/tasks")
        status = reply.status_code
    else:
        from flask import Flask

        web = Flask(__name__)
        web.register_blueprint(blueprint, url_prefix=PREFIX)
        status = (await asyncio.to_thread(web.test_client().get, f"{PREFIX}/api/tasks")).status_code
    assert status == 200
    await app.stop()
    forget(app)


async def test_django_adapter_get_routes_is_get_urls_and_staff_only() -> None:
    from django.test import AsyncClient
    from django.urls import clear_url_caches, include, path

    from flowrra.ui.django import DjangoAdapter
    from tests.django import urls

    app = build_app()
    adapter = DjangoAdapter(app)
    patterns = adapter.get_routes()
    assert adapter.get_urls() is patterns and len(patterns) == 1
    mounted = path("flowrra/", include(patterns))
    urls.urlpatterns.append(mounted)
    clear_url_caches()
    try:
        anonymous = await AsyncClient().get("/flowrra/api/stats")
        assert anonymous.status_code in (401, 403)  # the staff-only default holds
        staff = await (await _staff_client()).get("/flowrra/api/stats")
        assert staff.status_code == 200
    finally:
        urls.urlpatterns.remove(mounted)
        clear_url_caches()
        await app.stop()
        forget(app)


async def _hello(client: Any, headers: dict[str, str] | None = None) -> str:
    async with client.websocket(f"{PREFIX}/ws", headers=headers or {}) as ws:
        return json.loads(await asyncio.wait_for(ws.receive(), 10))["type"]


def _socket_rules(web: Any) -> list[str]:
    return [str(rule) for rule in web.url_map.iter_rules() if rule.websocket]


async def test_setup_websocket_after_the_blueprint_is_a_no_op() -> None:
    from quart import Quart

    from flowrra.ui.flask import create_blueprint
    from flowrra.ui.quart_websocket import setup_websocket

    app = build_app()
    await app.start(consume=False)
    try:
        web = Quart(__name__)
        web.register_blueprint(create_blueprint(app), url_prefix=PREFIX)
        setup_websocket(web)
        assert _socket_rules(web) == [f"{PREFIX}/ws"]
        assert await _hello(web.test_client()) == "hello"
    finally:
        await app.stop()
        forget(app)


async def test_setup_websocket_before_the_blueprint_uses_its_auth() -> None:
    from quart import Quart
    from quart.testing.connections import WebsocketResponseError

    from flowrra.ui.flask import create_blueprint
    from flowrra.ui.quart_websocket import setup_websocket

    app = build_app()
    await app.start(consume=False)
    try:
        web = Quart(__name__)
        setup_websocket(web, path="/flowrra/ws")
        with pytest.raises(WebsocketResponseError) as refused:
            await _hello(web.test_client())
        assert refused.value.response.status_code == 503  # no dashboard registered yet
        web.register_blueprint(create_blueprint(app, auth=header_auth), url_prefix=PREFIX)
        with pytest.raises(WebsocketResponseError) as refused:
            await _hello(web.test_client())
        assert refused.value.response.status_code == 401
        assert await _hello(web.test_client(), {"x-token": "ok"}) == "hello"
    finally:
        await app.stop()
        forget(app)


async def test_setup_websocket_with_an_app_serves_its_events() -> None:
    from quart import Quart

    from flowrra.ui.quart_websocket import setup_websocket

    app = build_app()
    await app.start(consume=False)
    try:
        web = Quart(__name__)
        setup_websocket(web, "/flowrra/ws", flowrra=app)
        assert _socket_rules(web) == ["/flowrra/ws"]
        assert await _hello(web.test_client()) == "hello"
        assert (await web.test_client().get("/flowrra/ws")).status_code == 400  # as on 0.1.8
    finally:
        await app.stop()
        forget(app)


def test_router_dependencies_assigned_after_create_router_protect_every_route() -> None:
    """0.1.8's web-ui guide: ``router.dependencies = [Depends(check)]`` after ``create_router``."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPBasic, HTTPBasicCredentials
    from fastapi.testclient import TestClient

    from flowrra.ui.fastapi import create_router

    security = HTTPBasic()

    def verify(credentials: HTTPBasicCredentials = Depends(security)) -> str:  # noqa: B008
        if (credentials.username, credentials.password) != ("admin", "secret"):
            raise HTTPException(401, "Invalid credentials", {"WWW-Authenticate": "Basic"})
        return credentials.username

    app = build_app()
    router = create_router(app)
    router.dependencies = [Depends(verify)]
    web = FastAPI()
    web.include_router(router, prefix="/flowrra")
    try:
        with TestClient(web) as client:
            for path in ("/flowrra/", "/flowrra/api/stats", "/flowrra/static/flowrra.css"):
                assert client.get(path).status_code == 401, path
                assert client.get(path, auth=("admin", "wrong")).status_code == 401, path
            assert client.get("/flowrra/api/stats", auth=("admin", "secret")).status_code == 200
    finally:
        forget(app)
