"""The JSON API under ``<prefix>/api/``: routing, input validation and error mapping.

Paths, methods, shapes and status codes are documented in ``docs/ui.md``; the
same table serves every framework. Errors are ``{"error", "detail", "code", "status"}``
(``detail`` repeats ``error`` for clients written for FastAPI-style errors).
List endpoints that flowrra 0.1.8 had (``tasks``, ``schedules``) answer a plain
JSON list, as 0.1.8 did; the newer ones (``executions``, ...) answer a page object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from flowrra.exceptions import TaskNotFoundError
from flowrra.management import (
    EXECUTION_STATUSES,
    ConflictError,
    FlowrraManager,
    NotFoundError,
    SchedulerNotConfiguredError,
)
from flowrra.ui.http import ApiError, UIRequest, UIResponse, json_response

Handler = Callable[..., Awaitable[UIResponse]]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SCHEDULE_FIELDS = {"task_name", "args", "kwargs", "enabled", "description", "priority",
                    "max_retries", "retry_delay", "timezone", "missed"}


def query_int(request: UIRequest, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Query parameter {name!r} must be an integer, got {raw!r}") from None


def query_bool(request: UIRequest, name: str) -> bool:
    raw = (request.query.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ApiError(400, f"Query parameter {name!r} must be true or false, got {raw!r}")


def json_body(request: UIRequest) -> dict[str, Any]:
    if not request.body.strip():
        raise ApiError(400, "Request body is empty: send a JSON object")
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must be a JSON object, got {type(data).__name__}")
    return data


class ApiRouter:
    """Maps ``(method, path)`` to the manager call and its JSON response."""

    def __init__(self, manager: FlowrraManager) -> None:
        self.m = manager
        self.routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        add = self._add
        add("stats", GET=self.stats)
        add("health", GET=self.health)
        add("workers", GET=self.workers)
        add("tasks", GET=self.tasks)
        add("tasks/(?P<name>.+)", GET=self.task_info)
        add("executions", GET=self.executions)
        add("executions/(?P<task_id>[^/]+)", GET=self.execution)
        add("executions/(?P<task_id>[^/]+)/retry", POST=self.retry)
        add("executions/(?P<task_id>[^/]+)/cancel", POST=self.cancel)
        add("dead-letters", GET=self.dead_letters, DELETE=self.purge_all)
        add("dead-letters/(?P<task_id>[^/]+)", DELETE=self.purge_one)
        add("dead-letters/(?P<task_id>[^/]+)/retry", POST=self.retry_dead)
        add("scheduler", GET=self.scheduler_stats)
        add("schedules", GET=self.schedules)
        add("schedules/cron", POST=self.create_cron)
        add("schedules/interval", POST=self.create_interval)
        add("schedules/(?P<sid>[^/]+)", GET=self.schedule, DELETE=self.delete_schedule)
        add("schedules/(?P<sid>[^/]+)/enable", PUT=self.enable, POST=self.enable)
        add("schedules/(?P<sid>[^/]+)/disable", PUT=self.disable, POST=self.disable)
        add("schedules/(?P<sid>[^/]+)/run", POST=self.run_now)

    def _add(self, pattern: str, **methods: Handler) -> None:
        self.routes.append((re.compile(pattern + r"\Z"), methods))

    async def handle(self, method: str, path: str, request: UIRequest) -> UIResponse:
        """``path`` is relative to ``api/``. Exact routes win over ``{id}`` routes."""
        path = path.rstrip("/")
        if method == "HEAD":
            method = "GET"
        allowed: list[str] = []
        for pattern, methods in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            handler = methods.get(method)
            if handler is None:
                allowed.extend(methods)
                continue
            try:
                return await handler(request, **match.groupdict())
            except ApiError:
                raise
            except SchedulerNotConfiguredError as exc:
                raise ApiError(503, str(exc), "no_scheduler") from None
            except NotFoundError as exc:
                raise ApiError(404, str(exc)) from None
            except ConflictError as exc:
                raise ApiError(409, str(exc)) from None
        if allowed:
            response = ApiError(405, f"{method} is not allowed on api/{path}; use "
                                f"{', '.join(sorted(set(allowed)))}").response()
            response.headers["Allow"] = ", ".join(sorted(set(allowed)))
            return response
        raise ApiError(404, f"No API endpoint api/{path}; see docs/ui.md for the list")

    # -- overview -----------------------------------------------------------------------
    async def stats(self, request: UIRequest) -> UIResponse:
        return json_response(await self.m.get_stats())

    async def health(self, request: UIRequest) -> UIResponse:
        report = await self.m.health_check()
        return json_response(report, 503 if report["status"] == "unhealthy" else 200)

    async def workers(self, request: UIRequest) -> UIResponse:
        return json_response({"items": await self.m.list_workers()})

    async def tasks(self, request: UIRequest) -> UIResponse:
        return json_response(await self.m.list_registered_tasks())

    async def task_info(self, request: UIRequest, name: str) -> UIResponse:
        info = await self.m.get_task_info(name)
        if info is None:
            raise ApiError(404, f"Task '{name}' not registered")
        return json_response(info)

    # -- executions ---------------------------------------------------------------------
    async def executions(self, request: UIRequest) -> UIResponse:
        try:
            page = await self.m.list_executions(
                status=request.query.get("status") or None,
                limit=query_int(request, "limit", 50),
                offset=query_int(request, "offset", 0) or 0,
                query=request.query.get("q"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        page["statuses"] = list(EXECUTION_STATUSES)
        return json_response(page)

    async def execution(self, request: UIRequest, task_id: str) -> UIResponse:
        item = await self.m.get_execution(task_id)
        if item is None:
            raise ApiError(404, f"No task with id {task_id!r}")
        return json_response(item)

    async def retry(self, request: UIRequest, task_id: str) -> UIResponse:
        return json_response(await self.m.retry_task(task_id))

    async def cancel(self, request: UIRequest, task_id: str) -> UIResponse:
        return json_response(await self.m.cancel_task(task_id))

    # -- dead letters -------------------------------------------------------------------
    async def dead_letters(self, request: UIRequest) -> UIResponse:
        try:
            return json_response(await self.m.list_dead_letters(
                query_int(request, "limit", 50), query_int(request, "offset", 0) or 0))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    async def purge_all(self, request: UIRequest) -> UIResponse:
        return json_response(await self.m.purge_dead_letters())

    async def purge_one(self, request: UIRequest, task_id: str) -> UIResponse:
        return json_response(await self.m.purge_dead_letters(task_id))

    async def retry_dead(self, request: UIRequest, task_id: str) -> UIResponse:
        return json_response(await self.m.retry_dead_letter(task_id))

    # -- schedules ----------------------------------------------------------------------
    async def scheduler_stats(self, request: UIRequest) -> UIResponse:
        return json_response(await self.m.get_scheduler_stats())

    async def schedules(self, request: UIRequest) -> UIResponse:
        enabled_only = query_bool(request, "enabled_only")
        return json_response(await self.m.list_schedules(enabled_only=enabled_only))

    async def schedule(self, request: UIRequest, sid: str) -> UIResponse:
        found = await self.m.get_schedule(sid)
        if found is None:
            raise ApiError(404, f"No schedule with id {sid!r}")
        return json_response(found)

    async def create_cron(self, request: UIRequest) -> UIResponse:
        body = json_body(request)
        cron = body.pop("cron", None)
        options = _schedule_options(body, "cron")
        sid = await _creating(self.m.create_schedule_cron(cron=cron, **options))
        return _created(sid)

    async def create_interval(self, request: UIRequest) -> UIResponse:
        body = json_body(request)
        interval = body.pop("interval", None)
        options = _schedule_options(body, "interval")
        sid = await _creating(self.m.create_schedule_interval(interval=interval, **options))
        return _created(sid)

    async def enable(self, request: UIRequest, sid: str) -> UIResponse:
        if not await self.m.enable_schedule(sid):
            raise ApiError(404, f"No schedule with id {sid!r}")
        return json_response({"status": "enabled", "schedule_id": sid, "enabled": True})

    async def disable(self, request: UIRequest, sid: str) -> UIResponse:
        if not await self.m.disable_schedule(sid):
            raise ApiError(404, f"No schedule with id {sid!r}")
        return json_response({"status": "disabled", "schedule_id": sid, "enabled": False})

    async def delete_schedule(self, request: UIRequest, sid: str) -> UIResponse:
        """200 ``{"deleted": true, "schedule_id"}``; unknown id: 404 that also says ``deleted: false``.

        0.1.8 answered 200 with ``deleted: false``; a 404 is kept (it is what every
        other unknown-id call answers) but the body carries the same two keys.
        """
        if not await self.m.delete_schedule(sid):
            response = ApiError(404, f"No schedule with id {sid!r}").response()
            return json_response({**response.json(), "deleted": False, "schedule_id": sid}, 404)
        return json_response({"deleted": True, "schedule_id": sid})

    async def run_now(self, request: UIRequest, sid: str) -> UIResponse:
        task_id = await self.m.run_schedule_now(sid)
        return json_response({"schedule_id": sid, "task_id": task_id}, 202)


def _created(sid: str) -> UIResponse:
    """201 with ``schedule_id`` (0.1.8's answer) and ``id`` (the name 0.1.8's UI.md showed)."""
    return json_response({"schedule_id": sid, "id": sid}, 201)


def _schedule_options(body: dict[str, Any], kind: str) -> dict[str, Any]:
    unknown = sorted(set(body) - _SCHEDULE_FIELDS)
    if unknown:
        raise ApiError(400, f"Unknown field(s) for a {kind} schedule: {', '.join(unknown)}; "
                       f"allowed: {kind}, {', '.join(sorted(_SCHEDULE_FIELDS))}")
    if "task_name" not in body:
        raise ApiError(400, "Field 'task_name' is required")
    if "description" in body and body["description"] is not None \
            and not isinstance(body["description"], str):
        raise ApiError(400, "Field 'description' must be a string")
    if "enabled" in body and not isinstance(body["enabled"], bool):
        raise ApiError(400, "Field 'enabled' must be true or false")
    body.setdefault("priority", 0)
    return body


async def _creating(call: Awaitable[str]) -> str:
    """Await a schedule creation, turning bad input into a 400 that says what was wrong."""
    try:
        return await call
    except SchedulerNotConfiguredError:
        raise  # also a ValueError (as in 0.1.8), but it is a 503, not bad input
    except TaskNotFoundError as exc:
        raise ApiError(400, f"{exc}: register it with @app.task in the web process too",
                       "unknown_task") from None
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc)) from None
