"""Adapter-specific behaviour: FastAPI dependencies and mounts, Flask/Quart registration, missing extras."""

from __future__ import annotations

import importlib
import sys

import httpx
import pytest
from fastapi import HTTPException, Request

from flowrra import Flowrra
from tests.ui.harness import build_app


async def _client(web) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver")


def staff_only(request: Request) -> None:
    if request.headers.get("x-staff") != "yes":
        raise HTTPException(status_code=403, detail="staff only")


async def test_fastapi_dependencies_guard_the_router() -> None:
    from fastapi import Depends, FastAPI

    from flowrra.ui.fastapi import create_router

    app = build_app()
    web = FastAPI()
    web.include_router(create_router(app, dependencies=[Depends(staff_only)]), prefix="/ops")
    async with await _client(web) as client:
        assert (await client.get("/ops/api/stats")).status_code == 403
        assert (await client.get("/ops/")).status_code == 403
        assert (await client.get("/ops/api/tasks", headers={"x-staff": "yes"})).status_code == 200
    await app.stop()


async def test_fastapi_root_mount_and_sub_application() -> None:
    from fastapi import FastAPI

    from flowrra.ui.fastapi import create_router

    app = build_app()
    root = FastAPI()
    root.include_router(create_router(app))
    outer, inner = FastAPI(), FastAPI()
    inner.include_router(create_router(app), prefix="/dash")
    outer.mount("/admin", inner)
    async with await _client(root) as client:
        page = await client.get("/")
        assert page.status_code == 200 and 'content="" ' not in page.text
        assert 'href="/tasks"' in page.text
        assert (await client.get("/api/tasks")).status_code == 200
    async with await _client(outer) as client:
        page = await client.get("/admin/dash/tasks")
        assert page.status_code == 200 and 'href="/admin/dash/schedules"' in page.text
        assert (await client.get("/admin/dash/api/tasks")).json()
    await app.stop()


def test_blueprint_refuses_other_apps() -> None:
    from flowrra.ui.flask import create_blueprint

    blueprint = create_blueprint(Flowrra())
    with pytest.raises(TypeError, match="Flask or Quart"):
        blueprint.register(object(), {})


async def test_plain_flask_has_no_socket_and_says_so() -> None:
    from flask import Flask

    from flowrra.ui.flask import create_blueprint

    web = Flask(__name__)
    web.register_blueprint(create_blueprint(Flowrra()), url_prefix="/flowrra")
    reply = web.test_client().get("/flowrra/ws")
    assert reply.status_code == 426 and "polling" in reply.get_json()["error"]


@pytest.mark.parametrize("module, missing, extra", [
    ("flowrra.ui.fastapi", ("fastapi",), "flowrra[ui-fastapi]"),
    ("flowrra.ui.standalone", ("uvicorn",), "flowrra[ui-fastapi]"),
    ("flowrra.ui.flask", ("flask", "quart"), "flowrra[ui-flask]"),
])
def test_missing_framework_names_the_extra(monkeypatch, module: str, missing: tuple[str, ...],
                                           extra: str) -> None:
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        importlib.import_module(module)
