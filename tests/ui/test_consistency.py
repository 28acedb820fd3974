"""The same requests get the same status codes and JSON shapes on every framework, side by side."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

from tests.ui.harness import FRAMEWORKS, Harness, UIOptions

REQUESTS: list[tuple[str, str, Any]] = [
    ("GET", "api/stats", None), ("GET", "api/health", None), ("GET", "api/workers", None),
    ("GET", "api/tasks", None), ("GET", "api/tasks/ui.add", None), ("GET", "api/tasks/nope", None),
    ("GET", "api/executions?status=success", None), ("GET", "api/executions?limit=x", None),
    ("GET", "api/executions/nope", None), ("POST", "api/executions/nope/retry", None),
    ("POST", "api/executions/nope/cancel", None), ("GET", "api/dead-letters", None),
    ("DELETE", "api/dead-letters/nope", None), ("GET", "api/schedules", None),
    ("GET", "api/schedules/nope", None), ("GET", "api/scheduler", None),
    ("POST", "api/schedules/cron", {"task_name": "ui.add", "cron": "0 * * * *"}),
    ("POST", "api/schedules/cron", {"task_name": "ui.add", "cron": "bad"}),
    ("PUT", "api/schedules/nope/enable", None), ("DELETE", "api/schedules/nope", None),
    ("POST", "api/stats", None), ("GET", "api/nothing", None), ("GET", "static/nope.js", None),
    ("GET", "static/%2e%2e/service.py", None), ("GET", "nope", None), ("GET", "ws", None),
]


def shape(value: Any) -> Any:
    """Keys and value types, recursively (lists by their first item), without the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k not in ("timestamp",)}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


async def answers(harness: Harness) -> list[tuple[str, int, Any]]:
    await harness.run(harness.app.wait_for_result(await harness.run(harness.app.submit("ui.add", 1, 2)), 10))
    out = []
    for method, path, body in REQUESTS:
        reply = await harness.request(method, path, **({"json": body} if body else {}))
        is_json = reply.headers.get("content-type", "").startswith("application/json")
        out.append((f"{method} {path}", reply.status, shape(reply.json()) if is_json else None))
    return out


async def test_every_framework_answers_alike() -> None:
    results = {}
    for name, factory in FRAMEWORKS.items():
        if importlib.util.find_spec(name) is None:
            continue
        async with contextlib.AsyncExitStack() as stack:
            harness = await stack.enter_async_context(factory(UIOptions(scheduler=True)))
            results[name] = await answers(harness)
    assert len(results) >= 3, results.keys()
    reference_name, reference = next(iter(results.items()))
    for name, got in results.items():
        for expected, actual in zip(reference, got, strict=True):
            assert actual == expected, f"{name} differs from {reference_name}: {actual} != {expected}"
