"""The Django HTTP adapter through Django's async test client: auth, CSRF, routing, errors.

The JSON API itself is covered on every framework (Django included) by tests/ui.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, override_settings

from flowrra import Flowrra
from flowrra.ui.django import get_urls
from tests.conftest import unique


@pytest.fixture
async def started(app: Flowrra) -> Flowrra:
    await app.start()
    return app


def error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert body["status"] == status and body["error"]
    assert body["detail"] == body["error"], "FastAPI-style clients read 'detail'"
    if code is not None:
        assert body["code"] == code, body
    return body


def test_import_without_django_names_the_extra() -> None:
    script = ("import sys\nsys.modules['django'] = None\n"
              "try:\n    import flowrra.ui.django\nexcept ImportError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'flowrra[ui-django]'" in result.stdout


def test_one_catch_all_route(app: Flowrra) -> None:
    patterns = get_urls(app)
    assert len(patterns) == 1
    assert patterns[0].resolve("api/executions/abc/retry").kwargs == {"subpath": "api/executions/abc/retry"}
    assert patterns[0].resolve("").kwargs == {"subpath": ""}


async def test_staff_only_by_default(started: Flowrra, mount, staff_user, plain_user) -> None:
    mount("flowrra/", get_urls(started))
    anonymous = AsyncClient()
    page = await anonymous.get("/flowrra/tasks?status=failed")
    assert page.status_code == 302
    assert page["Location"] == "/login/?next=/flowrra/tasks%3Fstatus%3Dfailed"
    error(await anonymous.get("/flowrra/api/stats"), 401, "unauthorized")
    error(await anonymous.get("/flowrra/static/flowrra.js"), 401, "unauthorized")

    viewer = AsyncClient()
    await sync_to_async(viewer.force_login)(plain_user)
    error(await viewer.get("/flowrra/"), 403, "forbidden")
    error(await viewer.get("/flowrra/api/stats"), 403, "forbidden")

    staff = AsyncClient()
    await sync_to_async(staff.force_login)(staff_user)
    assert (await staff.get("/flowrra/api/stats")).status_code == 200
    page = await staff.get("/flowrra/")
    assert page.status_code == 200 and b"/flowrra/static/flowrra.js" in page.content
    cookie = page.cookies["csrftoken"].value
    again = await staff.get("/flowrra/tasks")
    if "csrftoken" in again.cookies:  # Django re-sends the cookie to refresh its expiry...
        assert again.cookies["csrftoken"].value == cookie  # ...but must not rotate it
    assert staff.cookies["csrftoken"].value == cookie


async def test_custom_sync_hook_may_use_the_orm(started: Flowrra, mount, plain_user) -> None:
    seen: list[str] = []

    def viewers_only(request: Any) -> bool:
        # request.user is a lazy ORM lookup: this only works off the event loop
        seen.append(request.user.username)
        return request.user.username.startswith("viewer")

    mount("flowrra/", get_urls(started, auth=viewers_only))
    client = AsyncClient()
    await sync_to_async(client.force_login)(plain_user)
    assert (await client.get("/flowrra/api/stats")).status_code == 200
    assert seen == [plain_user.username]
    error(await AsyncClient().get("/flowrra/api/stats"), 403, "forbidden")


async def test_auth_setting_and_explicit_hook(started: Flowrra, mount) -> None:
    mount("flowrra/", get_urls(started))
    with override_settings(FLOWRRA_UI_AUTH="tests.django.hooks.everyone"):
        assert (await AsyncClient().get("/flowrra/api/stats")).status_code == 200
    error(await AsyncClient().get("/flowrra/api/stats"), 401)
    with pytest.raises(ImportError, match="no_such_hook"):
        get_urls(started, auth="tests.django.hooks:no_such_hook")
    with pytest.raises(TypeError, match="callable"):
        get_urls(started, auth=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("project_csrf_middleware", [False, True], ids=["no-middleware", "middleware"])
async def test_csrf_on_mutations(started: Flowrra, mount, staff_user,
                                 project_csrf_middleware: bool) -> None:
    @started.task(name=unique("boom"), max_retries=0)
    async def boom() -> None:
        raise RuntimeError("kaput")

    failed = await started.submit(boom)
    await started.wait_for_result(failed, timeout=10)
    mount("flowrra/", get_urls(started))
    middleware = ["django.contrib.sessions.middleware.SessionMiddleware",
                  "django.middleware.csrf.CsrfViewMiddleware",
                  "django.contrib.auth.middleware.AuthenticationMiddleware"]
    with override_settings(**({"MIDDLEWARE": middleware} if project_csrf_middleware else {})):
        client = AsyncClient(enforce_csrf_checks=True)
        await sync_to_async(client.force_login)(staff_user)
        post = functools.partial(client.post, content_type="application/json")
        body = error(await post(f"/flowrra/api/executions/{failed}/retry"), 403, "csrf_failed")
        assert "X-CSRFToken" in body["error"]
        await client.get("/flowrra/")  # the page sets the cookie, as in a browser
        token = client.cookies["csrftoken"].value
        error(await post(f"/flowrra/api/executions/{failed}/retry", headers={"X-CSRFToken": "x" * 32}),
              403, "csrf_failed")
        error(await post("/flowrra/api/executions/nope/retry", headers={"X-CSRFToken": token}),
              404, "not_found")
        # a form-encoded post is checked too (its body parsed by the CSRF check) and never a 500
        form = await client.post("/flowrra/api/executions/nope/retry", {"a": "b"},
                                 headers={"X-CSRFToken": token})
        error(form, 415)
        ok = await post(f"/flowrra/api/executions/{failed}/retry", headers={"X-CSRFToken": token})
        assert ok.status_code == 200, ok.content
        # safe methods need no token
        assert (await client.get(f"/flowrra/api/executions/{failed}")).status_code == 200


async def test_errors_are_json_never_500(started: Flowrra, mount) -> None:
    mount("flowrra/", get_urls(started, auth=lambda request: True))
    client = AsyncClient(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = token = "t" * 32
    error(await client.get("/flowrra/api/executions/does-not-exist"), 404, "not_found")
    error(await client.get("/flowrra/api/executions?limit=lots"), 400)
    error(await client.post("/flowrra/api/schedules/cron", b"{not json", content_type="application/json",
                            headers={"X-CSRFToken": token}), 400)
    for path in ("static/../django.py", "static/%2e%2e/service.py", "static/..%2f..%2fapp.py"):
        assert (await client.get(f"/flowrra/{path}")).status_code == 404, path
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100):
        error(await client.post("/flowrra/api/schedules/cron", b"{" + b" " * 1000 + b"}",
                                content_type="application/json", headers={"X-CSRFToken": token}), 413)


async def test_links_follow_the_mount_prefix(started: Flowrra, mount) -> None:
    mount("ops/queue/", get_urls(started, auth=lambda request: True))
    page = await AsyncClient().get("/ops/queue/tasks")
    assert page.status_code == 200
    assert b'href="/ops/queue/static/flowrra.css' in page.content
    assert b'content="/ops/queue"' in page.content
    assert (await AsyncClient().get("/ops/queue/static/flowrra.js")).status_code == 200
