"""Read-only mode, the auth hook, static path traversal and hostile input — on every framework."""

from __future__ import annotations

from typing import Any

import pytest

from flowrra.ui import AuthError
from tests.ui.harness import Harness
from tests.ui.test_api_tasks import assert_error, finish, submit

TOKEN = "s3cret"
MUTATIONS = [
    ("POST", "api/executions/x/retry"), ("POST", "api/executions/x/cancel"),
    ("DELETE", "api/dead-letters"), ("DELETE", "api/dead-letters/x"),
    ("POST", "api/dead-letters/x/retry"), ("POST", "api/schedules/cron"),
    ("POST", "api/schedules/interval"), ("PUT", "api/schedules/x/enable"),
    ("PUT", "api/schedules/x/disable"), ("DELETE", "api/schedules/x"),
    ("POST", "api/schedules/x/run"),
]


def token_auth(request: Any) -> bool:
    """Works with Starlette, Flask, Quart and Django requests alike (all have .headers)."""
    supplied = request.headers.get("x-token")
    if supplied is None:
        raise AuthError(401, "Log in first", headers={"WWW-Authenticate": 'Token realm="flowrra"'})
    return supplied == TOKEN


async def test_read_only_refuses_every_mutation(make_ui) -> None:
    ui = await make_ui(read_only=True, scheduler=True)
    failed = await submit(ui, "ui.boom")
    await finish(ui, failed)
    for method, path in MUTATIONS:
        assert_error(await ui.request(method, path.replace("/x", f"/{failed}")), 403, "read_only")
    assert (await ui.get("api/dead-letters")).json()["total"] == 1, "nothing was purged"
    assert (await ui.get("api/stats")).status == 200
    page = await ui.get("")
    assert page.status == 200 and 'data-read-only="true"' in page.text


async def test_auth_hook_guards_pages_api_and_static(make_ui) -> None:
    ui = await make_ui(auth=token_auth)
    for path in ("", "tasks", "api/stats", "api/executions", "static/flowrra.js"):
        refused = await ui.get(path)
        assert_error(refused, 401, "unauthorized")
        assert refused.headers["www-authenticate"] == 'Token realm="flowrra"'
        assert_error(await ui.get(path, headers={"X-Token": "wrong"}), 403, "forbidden")
        assert (await ui.get(path, headers={"X-Token": TOKEN})).status == 200, path
    assert_error(await ui.post("api/executions/x/cancel"), 401)
    assert_error(await ui.post("api/executions/x/cancel", headers={"X-Token": TOKEN}), 404)


async def test_failing_auth_hook_fails_closed(make_ui) -> None:
    def broken(request: Any) -> bool:
        raise KeyError("session store down")

    ui = await make_ui(auth=broken)
    assert_error(await ui.get("api/stats"), 403, "forbidden")


async def test_async_auth_hook(make_ui) -> None:
    async def allow_all(request: Any) -> bool:
        return True

    ui = await make_ui(auth=allow_all)
    assert (await ui.get("api/stats")).status == 200


@pytest.mark.parametrize("path", [
    "static/../service.py",
    "static/%2e%2e/service.py",
    "static/%2E%2E/%2E%2E/app.py",
    "static/..%2fservice.py",
    "static/..%5cservice.py",
    "static/%2fetc%2fpasswd",
    "static//etc/passwd",
    "static/%00flowrra.js",
    "static/.%2e/.%2e/__init__.py",
    "static/%2e/flowrra.js",
    "static/C:%5cWindows%5cwin.ini",
    "static/",
    "static/nope.js",
])
async def test_static_path_traversal_is_404(ui: Harness, path: str) -> None:
    reply = await ui.get(path, follow=True)
    assert reply.status == 404, (path, reply.status, reply.text[:200])
    assert b"import " not in reply.body and b"root:" not in reply.body


async def test_static_files_are_served_with_types(ui: Harness) -> None:
    js = await ui.get("static/flowrra.js")
    assert js.status == 200 and js.headers["content-type"].startswith("text/javascript")
    css = await ui.get("static/flowrra.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert js.headers["x-content-type-options"] == "nosniff"


async def test_cross_site_mutation_is_refused(ui: Harness) -> None:
    for site in ("cross-site", "same-site"):  # a sibling origin is not the dashboard either
        reply = await ui.post("api/executions/x/cancel", headers={"Sec-Fetch-Site": site})
        assert_error(reply, 403, "cross_origin")
    same = await ui.post("api/executions/x/cancel", headers={"Sec-Fetch-Site": "same-origin"})
    assert_error(same, 404)


async def test_foreign_origin_mutation_is_refused_whatever_the_body(ui: Harness) -> None:
    for body in (None, b"", b'{"a": 1}'):
        headers = {"Origin": "http://evil.example"}
        if body:
            headers["Content-Type"] = "application/json"
        reply = await ui.post("api/executions/x/cancel", headers=headers, body=body)
        # Django's own CSRF check may answer first
        assert assert_error(reply, 403)["code"] in ("cross_origin", "csrf_failed")


HOSTILE = [
    ("GET", "api/executions/%00"), ("GET", "api/executions/" + "x" * 5000),
    ("GET", "api/tasks/%ff%fe"), ("GET", "api/executions?limit=99999999999999999999"),
    ("GET", "api/executions?offset=1e309"), ("GET", "api/executions?status=%00"),
    ("GET", "api/executions?q=%ff"), ("GET", "api/executions?q=" + "a" * 3000),
    ("PATCH", "api/stats"), ("OPTIONS", "api/stats"), ("PUT", "api"), ("GET", "api"),
    ("GET", "api/"), ("DELETE", "tasks"), ("GET", "tasks/%00"), ("GET", "nope/nope"),
    ("GET", "api/schedules/%2e%2e"), ("POST", "api/schedules//run"),
    ("GET", "api/dead-letters?limit=&offset="), ("GET", "ws"),
]


@pytest.mark.parametrize("method, path", HOSTILE)
async def test_hostile_input_never_gives_a_500(make_ui, method: str, path: str) -> None:
    ui = await make_ui(scheduler=True)
    reply = await ui.request(method, path, follow=True)
    assert 200 <= reply.status < 500, (method, path, reply.status, reply.text[:300])


async def test_hostile_bodies_never_give_a_500(make_ui) -> None:
    ui = await make_ui(scheduler=True)
    headers = {"Content-Type": "application/json"}
    for body in (b"\x00" * 10, b"{" * 5000, b'{"task_name": {"a": 1}, "cron": "* * * * *"}',
                 b'{"task_name": "ui.add", "cron": "* * * * *", "args": [NaN]}',
                 b'{"task_name": "ui.add", "cron": "* * * * *", "kwargs": {"x": Infinity}}',
                 b'{"task_name": "ui.add", "cron": "* * * * *", "priority": 1e400}',
                 b'{"task_name": "ui.add", "interval": 1e400}'):
        for path in ("api/schedules/cron", "api/schedules/interval"):
            reply = await ui.post(path, body=body, headers=headers)
            assert 400 <= reply.status < 500, (body[:60], path, reply.status, reply.text[:300])
