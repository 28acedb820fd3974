"""A real browser: headless Chromium (Debian's, via Playwright) against real servers and workers.

- a submitted task's row goes to success live, through running, without a reload;
- with the socket cut (Playwright routes the page's WebSocket and closes it, then
  refuses new ones) the page says it is polling and still updates a new task's
  row from the JSON API; once sockets are allowed again it goes live by itself;
- every link and the socket stay under the mount prefix (a nested one here),
  clicking dashboard -> tasks -> task detail -> schedules;
- Django: a staff user logs in through the admin and watches a task live;
- screenshots of each page at phone and desktop sizes go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.browser import (
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    PHONE,
    ROW_RECORDER,
    row_states,
    shoot,
    submit,
    wait_ready,
)
from tests.e2e.conftest import running_stack
from tests.e2e.servers import Stack

pytestmark = [
    pytest.mark.browser, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(150),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; "
                              "bash scripts/test installs it)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def fastapi_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack("fastapi-uvicorn", tmp_path_factory) as stack:
        yield stack


@pytest.fixture(scope="module")
def nested_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack("fastapi-nested", tmp_path_factory) as stack:
        yield stack


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """``new_page(**context_options)``; fails the test on any JavaScript error in the page."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(**(options or DESKTOP))
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def wait_mode(page: Any, mode: str, timeout: float = 20_000) -> None:
    page.wait_for_selector(f"#connection-mode[data-mode='{mode}']", timeout=timeout)


def wait_row(page: Any, table: str, task_id: str, status: str, timeout: float = 20_000) -> None:
    page.wait_for_selector(f"#{table} tr[data-task-id='{task_id}'][data-status='{status}']",
                           timeout=timeout)


def test_row_turns_success_live_without_reload(new_page: Any, fastapi_stack: Stack) -> None:
    page = new_page()
    page.goto(f"{fastapi_stack.ui_url}/")
    wait_mode(page, "live")
    page.evaluate(ROW_RECORDER)

    task_id = submit(fastapi_stack)
    wait_row(page, "recent-tasks", task_id, "success")

    states = row_states(page, task_id)
    assert states[-1] == "success" and "running" in states, states  # pushed, not polled
    assert page.evaluate("window.__notReloaded") is True
    assert page.text_content("#connection-mode") == "live"
    assert page.evaluate("Flowrra.pollMs") == 15_000  # the fallback's default interval


def test_throughput_chart_shows_what_finished_before_the_page_opened(
        new_page: Any, fastapi_stack: Stack) -> None:
    task_id = submit(fastapi_stack)
    with httpx.Client(base_url=fastapi_stack.ui_url, timeout=10) as client:
        deadline = time.monotonic() + 20
        while client.get(f"/api/executions/{task_id}").json().get("status") != "success":
            assert time.monotonic() < deadline, "the task did not finish within 20 s"
            time.sleep(0.05)
    page = new_page()
    page.goto(f"{fastapi_stack.ui_url}/")
    # Drawn from the server's per-bucket counts, not from events this page saw.
    page.wait_for_selector("#throughput-chart span[style*='height: 100%']")
    assert page.locator("#throughput-chart span").count() == 30


def test_cut_socket_falls_back_to_polling_and_recovers(new_page: Any, fastapi_stack: Stack) -> None:
    page = new_page()
    state: dict[str, Any] = {"refuse": False, "routes": []}

    def route(ws: Any) -> None:
        if state["refuse"]:
            ws.close(code=1011, reason="refused by the test")  # never reaches the server
            return
        ws.connect_to_server()
        state["routes"].append(ws)

    page.route_web_socket(re.compile(r"/ws$"), route)
    page.goto(f"{fastapi_stack.ui_url}/?poll_ms=1000")  # the 15 s default, shortened for the test
    wait_mode(page, "live")
    page.evaluate(ROW_RECORDER)

    state["refuse"] = True
    for ws in state["routes"]:
        ws.close(code=1001, reason="cut by the test")
    wait_mode(page, "polling")
    assert "every 1 s" in (page.get_attribute("#connection-mode", "title") or "")

    task_id = submit(fastapi_stack)
    wait_row(page, "recent-tasks", task_id, "success")
    assert page.get_attribute("#connection-mode", "data-mode") == "polling"
    assert page.evaluate("window.__notReloaded") is True

    state["refuse"] = False  # the page retries with backoff and goes live again by itself
    wait_mode(page, "live", timeout=45_000)
    task_id = submit(fastapi_stack)
    wait_row(page, "recent-tasks", task_id, "success")
    assert "running" in row_states(page, task_id)


def test_links_and_socket_keep_the_mount_prefix(new_page: Any, nested_stack: Stack) -> None:
    prefix = nested_stack.example.mount
    page = new_page()
    requests: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    task_id = submit(nested_stack)

    page.goto(f"{nested_stack.ui_url}/")
    wait_mode(page, "live")
    page.click("#nav-tasks")
    page.wait_for_url(f"{nested_stack.ui_url}/tasks")
    wait_row(page, "tasks-table", task_id, "success")
    page.click(f"#tasks-table tr[data-task-id='{task_id}'] td a")
    page.wait_for_url(f"{nested_stack.ui_url}/tasks/{task_id}")
    page.wait_for_selector("#task-detail[data-status='success']")
    assert page.text_content("#task-result").strip() == str(nested_stack.example.result)
    page.click("#nav-schedules")
    page.wait_for_url(f"{nested_stack.ui_url}/schedules")
    page.wait_for_selector("#schedules-table tbody tr")  # the example's heartbeat schedule
    page.click(".brand")
    page.wait_for_url(f"{nested_stack.ui_url}/")
    wait_mode(page, "live")

    strays = [u for u in requests if not urlsplit(u).path.startswith(prefix + "/")]
    assert not strays, f"requests outside {prefix}/: {strays}"
    assert sockets and all(urlsplit(u).path == f"{prefix}/ws" for u in sockets), sockets


def test_django_staff_user_watches_a_task_live(new_page: Any,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_stack("django-daphne", tmp_path_factory, public=False,
                       admin="e2e-admin:e2e-password") as stack:
        assert httpx.get(f"{stack.ui_url}/api/health").status_code in (401, 403)
        page = new_page()
        page.goto(f"{stack.base_url}/admin/login/?next={stack.example.mount}/")
        page.fill("#id_username", "e2e-admin")
        page.fill("#id_password", "e2e-password")
        page.click("input[type=submit]")
        page.wait_for_url(f"{stack.ui_url}/")
        wait_mode(page, "live")
        page.evaluate(ROW_RECORDER)

        task_id = submit(stack)
        wait_row(page, "recent-tasks", task_id, "success")
        assert "running" in row_states(page, task_id)

        page.click("#nav-tasks")
        page.wait_for_url(f"{stack.ui_url}/tasks")
        page.click(f"#tasks-table tr[data-task-id='{task_id}'] td a")
        page.wait_for_url(f"{stack.ui_url}/tasks/{task_id}")
        wait_ready(page, "task")
        shoot(page, "django-task-desktop")
        page.click("#nav-schedules")
        page.wait_for_url(f"{stack.ui_url}/schedules")
        wait_ready(page, "schedules")
        shoot(page, "django-schedules-desktop")


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_screenshots_of_every_page(new_page: Any, nested_stack: Stack, size: str) -> None:
    ok = submit(nested_stack)
    failed = submit(nested_stack, "not a number", 1, max_retries=0)  # TypeError, with traceback
    page = new_page(**(PHONE if size == "phone" else DESKTOP))
    base = nested_stack.ui_url
    page.goto(f"{base}/tasks/{failed}")
    page.wait_for_selector("#task-detail[data-status='failed']")
    page.goto(f"{base}/tasks/{ok}")
    page.wait_for_selector("#task-detail[data-status='success']")
    for name, path in [("dashboard", "/"), ("tasks", "/tasks"), ("task", f"/tasks/{ok}"),
                       ("task-failed", f"/tasks/{failed}"), ("schedules", "/schedules")]:
        page.goto(base + path)
        wait_ready(page, name.split("-")[0])
        wait_mode(page, "live")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        shoot(page, f"{name}-{size}")
        assert overflow <= 0, f"the {name} page scrolls sideways by {overflow}px at {size} size"
