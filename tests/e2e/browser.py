"""Helpers for the browser tests: Chromium via Playwright, task submission, page readiness."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ARTIFACTS, producer_for
from tests.e2e.servers import Stack

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update"]
SCREENSHOTS = ARTIFACTS / "screenshots"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}
DESKTOP = {"viewport": {"width": 1440, "height": 900}}

# Records every (task id, status) a task row is rendered with, so a test can tell live
# intermediate states (running) from a final state fetched later by a poll.
ROW_RECORDER = """() => {
  window.__rows = [];
  const seen = (node) => {
    if (node.nodeType === 1 && node.matches("tr[data-task-id]")) {
      window.__rows.push([node.dataset.taskId, node.dataset.status]);
    }
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) m.addedNodes.forEach(seen);
  }).observe(document.body, {childList: true, subtree: true});
  window.__notReloaded = true;
}"""


def run_async(coro: Any) -> Any:
    """Run a coroutine on a fresh loop in another thread (Playwright's sync API owns this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(60)


def submit(stack: Stack, *args: Any, task: str | None = None, **options: Any) -> str:
    """Submit one task on the stack's Redis prefix from this process; returns its id."""
    name = task or stack.example.task

    async def go() -> str:
        async with producer_for(stack, name) as producer:
            if options:
                return await producer.apply_async(name, args, **options)
            return await producer.submit(name, *(args or stack.example.args))

    return run_async(go())


def row_states(page: Any, task_id: str) -> list[str]:
    """The statuses the page rendered for ``task_id``'s rows, consecutive repeats folded."""
    states: list[str] = []
    for row_id, status in page.evaluate("window.__rows"):
        if row_id == task_id and (not states or states[-1] != status):
            states.append(status)
    return states


def wait_ready(page: Any, name: str, timeout: float = 15_000) -> None:
    """Wait until the page's first data load has rendered."""
    if name == "task":
        page.wait_for_selector("#task-status:not([data-status=''])", timeout=timeout)
    else:
        page.wait_for_selector("#updated-at:not(:empty)", timeout=timeout)


def shoot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
