"""Read and control a running Flowrra app: the data behind the dashboard and its JSON API.

:class:`FlowrraManager` only uses the public surface of the app, its broker,
result backend and scheduler, so it works the same in a worker process, a web
process that only produces tasks, or a process that does both. Every value it
returns is JSON-ready (plain dicts, lists, strings, numbers).

Getters return ``None`` for unknown ids; actions raise :class:`NotFoundError`
(unknown id) or :class:`ConflictError` (the action does not apply to the
current state), and every schedule method raises
:class:`SchedulerNotConfiguredError` when the app has no scheduler.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowrra.exceptions import FlowrraError, TaskNotFoundError
from flowrra.health import executor_summary, health_report
from flowrra.task import TaskResult, TaskStatus, utcnow

if TYPE_CHECKING:
    from flowrra.app import Flowrra
    from flowrra.brokers import DeadLetter
    from flowrra.registry import TaskDefinition

__all__ = [
    "DEAD_LETTERED",
    "EXECUTION_STATUSES",
    "ConflictError",
    "FlowrraManager",
    "NotFoundError",
    "SchedulerNotConfiguredError",
]

#: Pseudo-status for tasks in the broker's dead-letter list (their record says ``failed``).
DEAD_LETTERED = "dead_lettered"
EXECUTION_STATUSES: tuple[str, ...] = (*(s.value for s in TaskStatus), DEAD_LETTERED)
MAX_PAGE = 500
_SEARCH_CAP = 1000
_THROUGHPUT_SCAN_CAP = 5000


class SchedulerNotConfiguredError(FlowrraError, RuntimeError, ValueError):
    """The app has no scheduler. Also a ``ValueError``: flowrra 0.1.8 raised that here."""

    def __init__(self) -> None:
        super().__init__(
            "No scheduler is configured for this app. Call app.create_scheduler() "
            "(e.g. app.create_scheduler('sqlite:///schedules.db')) in the process that "
            "serves the dashboard, or set FLOWRRA_SCHEDULER_ENABLED=true."
        )


class NotFoundError(FlowrraError, LookupError):
    """The task, execution, dead letter or schedule id is unknown."""


class ConflictError(FlowrraError):
    """The action does not apply to the object's current state (e.g. cancelling a finished task)."""


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _last_change(record: TaskResult) -> datetime:
    return (record.finished_at or record.started_at or record.submitted_at
            or datetime.min.replace(tzinfo=utcnow().tzinfo))


def validate_status(status: str | None) -> str | None:
    """Accept one of :data:`EXECUTION_STATUSES` (or None/"" for all); say what is valid."""
    if status is None or status == "" or status == "all":
        return None
    if status not in EXECUTION_STATUSES:
        raise ValueError(f"Unknown status {status!r}; expected one of: "
                         f"{', '.join(EXECUTION_STATUSES)} (or leave it empty for all)")
    return status


def validate_page(limit: int | None, offset: int) -> tuple[int, int]:
    if limit is None:
        limit = 50
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an integer between 1 and {MAX_PAGE}, got {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"offset must be an integer of zero or more, got {offset!r}")
    return limit, offset


class FlowrraManager:
    """Inspect tasks, workers, dead letters and schedules of ``app``; retry and cancel."""

    def __init__(self, app: Flowrra) -> None:
        self.app = app

    async def _ready(self) -> None:
        await self.app.connect()

    # -- overview -----------------------------------------------------------------------
    async def get_stats(self) -> dict[str, Any]:
        """Counts by status, broker queue sizes, workers, throughput and scheduler summary.

        Also carries the keys flowrra 0.1.8 returned (``app``, ``executors``,
        ``tasks.registered``, the scheduler's ``enabled``/``running``/...), so
        code written against it keeps reading the same meanings.
        """
        await self._ready()
        counts = await self.app.backend.count_by_status()
        broker = await self.app.broker.stats()
        workers = await self.app.broker.list_workers()
        return {
            "app": {"running": self.app.is_running},
            "executors": executor_summary(self.app),
            # Per-status counts, plus 0.1.8's "registered" (not a status: readers skip it).
            "tasks": {**counts, "registered": len(self.app.registry)},
            "total": sum(counts.values()),
            "dead_letters": int(broker.get("dead", 0)),
            "broker": broker,
            "workers": len(workers),
            "registered_tasks": len(self.app.registry),
            "throughput": await self.get_throughput(),
            "scheduler": await self._scheduler_summary(),
            "is_running": self.app.is_running,
            "timestamp": utcnow().isoformat(),
        }

    async def _scheduler_summary(self) -> dict[str, Any] | None:
        """The scheduler's stats for :meth:`get_stats`, with 0.1.8's ``enabled: True``.

        In this summary ``enabled`` means "a scheduler exists" (0.1.8); the number
        of enabled schedules is ``enabled_schedules``. None without a scheduler.
        """
        scheduler = self.app.scheduler
        if scheduler is None:
            return None
        try:
            stats = await self.get_scheduler_stats()
        except Exception as exc:  # the scheduler's store may be down; stats still load
            stats = {"error": str(exc), "running": bool(scheduler.is_running),
                     "is_running": bool(scheduler.is_running)}
        stats["enabled"] = True
        return stats

    async def health_check(self) -> dict[str, Any]:
        """``status`` healthy | degraded | unhealthy, plus 0.1.8's ``healthy``/``components``.

        See :mod:`flowrra.health` for the rules; ``healthy == (status == "healthy")``.
        """
        return await health_report(self.app)

    async def list_workers(self) -> list[dict[str, Any]]:
        await self._ready()
        workers = await self.app.broker.list_workers()
        return sorted(workers, key=lambda w: str(w.get("id", "")))

    async def get_throughput(self, window: float = 60.0, bucket: float = 2.0) -> dict[str, Any]:
        """Tasks that finished (success or failed) during the last ``window`` seconds.

        ``buckets.counts`` splits them into ``bucket``-second slices, oldest first, so
        a freshly opened dashboard draws the last minute instead of an empty chart.
        """
        await self._ready()
        now = utcnow()
        since = now - timedelta(seconds=window)
        slots = max(1, round(window / bucket))
        counts = [0] * slots
        totals: dict[str, int] = {}
        capped = False
        for status in (TaskStatus.SUCCESS, TaskStatus.FAILED):
            finished_at, hit_cap = await self._finished_since(status, since)
            totals[status.value] = len(finished_at)
            capped = capped or hit_cap
            for moment in finished_at:
                age = int((now - moment).total_seconds() // bucket)
                counts[slots - 1 - min(max(age, 0), slots - 1)] += 1
        finished = sum(totals.values())
        return {"window_seconds": window, "finished": finished, "succeeded": totals["success"],
                "failed": totals["failed"], "per_second": round(finished / window, 3),
                "per_minute": round(finished * 60.0 / window, 1), "capped": capped,
                "buckets": {"seconds": bucket, "counts": counts}}

    async def _finished_since(self, status: TaskStatus,
                              since: datetime) -> tuple[list[datetime], bool]:
        """Finish times of ``status`` records since ``since``; True if the scan hit its cap."""
        found: list[datetime] = []
        offset, page = 0, 200
        while offset < _THROUGHPUT_SCAN_CAP:
            records = await self.app.backend.list_by_status(status, limit=page, offset=offset)
            for record in records:
                if record.finished_at is None or record.finished_at < since:
                    return found, False
                found.append(record.finished_at)
            if len(records) < page:
                return found, False
            offset += page
        return found, True

    # -- registered tasks -------------------------------------------------------------
    async def list_registered_tasks(self) -> list[dict[str, Any]]:
        """Every registered task's options (async, as in 0.1.8, so ``await`` works)."""
        return [_definition_dict(d) for d in self.app.registry.definitions()]

    async def get_task_info(self, name: str) -> dict[str, Any] | None:
        """One task's options, module, ``qualname``, docstring and signature; None if unknown."""
        definition = self.app.registry.get(name)
        return _definition_dict(definition) if definition is not None else None

    # -- executions ---------------------------------------------------------------------
    async def _list_status(self, status: TaskStatus, limit: int | None) -> list[dict[str, Any]]:
        await self._ready()
        return [r.to_dict for r in await self.app.backend.list_by_status(status, limit=limit)]

    async def list_pending_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._list_status(TaskStatus.PENDING, limit)

    async def list_running_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._list_status(TaskStatus.RUNNING, limit)

    async def list_completed_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._list_status(TaskStatus.SUCCESS, limit)

    async def list_failed_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._list_status(TaskStatus.FAILED, limit)

    async def list_retrying_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._list_status(TaskStatus.RETRYING, limit)

    async def get_task_result(self, task_id: str) -> dict[str, Any] | None:
        await self._ready()
        record = await self.app.backend.get(task_id)
        if record is None:
            return None
        item = record.to_dict
        item["completed_at"] = item.get("finished_at")  # 0.1.8's name for the finish time
        return item

    async def list_executions(self, status: str | None = None, limit: int | None = 50,
                              offset: int = 0, query: str | None = None) -> dict[str, Any]:
        """A page of task records, newest first: ``{items, total, limit, offset, status, q}``.

        ``status`` is a task status, ``dead_lettered`` (the broker's dead-letter
        list) or None for all; ``query`` matches an id prefix or part of a name.
        """
        status = validate_status(status)
        limit, offset = validate_page(limit, offset)
        query = (query or "").strip() or None
        await self._ready()
        if query is not None:
            items, total = await self._search(query, status, limit, offset)
        elif status == DEAD_LETTERED:
            items, total = await self._dead_page(limit, offset)
        elif status is not None:
            records = await self.app.backend.list_by_status(status, limit=limit, offset=offset)
            items = [r.to_dict for r in records]
            total = (await self.app.backend.count_by_status()).get(status, 0)
        else:
            items, total = await self._all_page(limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset,
                "status": status, "q": query}

    async def _all_page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        counts = await self.app.backend.count_by_status()
        merged: list[TaskResult] = []
        for st in TaskStatus:
            if counts.get(st.value):
                merged.extend(await self.app.backend.list_by_status(st, limit=offset + limit))
        merged.sort(key=_last_change, reverse=True)
        return [r.to_dict for r in merged[offset:offset + limit]], sum(counts.values())

    async def _search(self, query: str, status: str | None, limit: int,
                      offset: int) -> tuple[list[dict[str, Any]], int]:
        if status == DEAD_LETTERED:
            needle = query.lower()
            letters = [d for d in await self.app.list_dead_letters()
                       if d.task_id.startswith(needle) or needle in d.task_name.lower()]
            return await self._dead_items(letters[offset:offset + limit]), len(letters)
        found = await self.app.backend.search(query, limit=_SEARCH_CAP)
        if status is not None:
            found = [r for r in found if r.status.value == status]
        return [r.to_dict for r in found[offset:offset + limit]], len(found)

    async def _dead_page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        letters = await self.app.list_dead_letters(limit, offset)
        total = int((await self.app.broker.stats()).get("dead", 0))
        return await self._dead_items(letters), max(total, offset + len(letters))

    async def _dead_items(self, letters: Sequence[DeadLetter]) -> list[dict[str, Any]]:
        items = []
        for letter in letters:
            record = await self.app.backend.get(letter.task_id)
            item = record.to_dict if record is not None else _record_from_letter(letter)
            item["dead_lettered"] = True
            item["dead_letter"] = letter.to_dict()
            items.append(item)
        return items

    async def get_execution(self, task_id: str) -> dict[str, Any] | None:
        """One task's record with its timeline and dead-letter entry (None if unknown)."""
        await self._ready()
        record = await self.app.backend.get(task_id)
        letter = await self._find_dead_letter(task_id)
        if record is None and letter is None:
            return None
        item = record.to_dict if record is not None else _record_from_letter(letter)  # type: ignore[arg-type]
        item["dead_letter"] = letter.to_dict() if letter is not None else None
        if letter is not None:
            item["dead_lettered"] = True
        item["timeline"] = _timeline(item)
        return item

    async def _find_dead_letter(self, task_id: str) -> DeadLetter | None:
        for letter in await self.app.list_dead_letters():
            if letter.task_id == task_id:
                return letter
        return None

    # -- actions ------------------------------------------------------------------------
    async def retry_task(self, task_id: str) -> dict[str, Any]:
        """Run a failed, cancelled or dead-lettered task again under the same id."""
        await self._ready()
        if await self.app.retry(task_id):
            return {"task_id": task_id, "status": TaskStatus.PENDING.value, "retried": True}
        record = await self.app.backend.get(task_id)
        if record is None:
            raise NotFoundError(f"No task with id {task_id!r}")
        if record.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise ConflictError(f"Task {task_id!r} cannot be retried: its task "
                                f"{record.task_name!r} is not registered in this process")
        raise ConflictError(f"Only failed or cancelled tasks can be retried; task {task_id!r} "
                            f"is {record.status.value}")

    async def cancel_task(self, task_id: str) -> dict[str, Any]:
        """Cancel a pending, retrying or running task."""
        await self._ready()
        record = await self.app.backend.get(task_id)
        if record is None:
            raise NotFoundError(f"No task with id {task_id!r}")
        if record.is_complete or not await self.app.cancel(task_id):
            raise ConflictError(f"Task {task_id!r} is already {record.status.value}; only "
                                "pending, retrying or running tasks can be cancelled")
        return {"task_id": task_id, "cancelled": True}

    # -- dead letters -------------------------------------------------------------------
    async def list_dead_letters(self, limit: int | None = 50, offset: int = 0) -> dict[str, Any]:
        limit, offset = validate_page(limit, offset)
        await self._ready()
        letters = await self.app.list_dead_letters(limit, offset)
        total = int((await self.app.broker.stats()).get("dead", 0))
        return {"items": [d.to_dict() for d in letters], "limit": limit, "offset": offset,
                "total": max(total, offset + len(letters))}

    async def retry_dead_letter(self, task_id: str) -> dict[str, Any]:
        await self._ready()
        if await self._find_dead_letter(task_id) is None:
            raise NotFoundError(f"No dead letter with task id {task_id!r}")
        if not await self.app.retry(task_id):
            raise ConflictError(f"Dead letter {task_id!r} cannot be retried (its message could "
                                "not be decoded); inspect it, then purge it")
        return {"task_id": task_id, "status": TaskStatus.PENDING.value, "retried": True}

    async def purge_dead_letters(self, task_id: str | None = None) -> dict[str, Any]:
        """Delete one dead letter (NotFoundError if unknown) or, with no id, all of them."""
        await self._ready()
        purged = await self.app.purge_dead_letters(task_id)
        if task_id is not None and purged == 0:
            raise NotFoundError(f"No dead letter with task id {task_id!r}")
        return {"purged": purged}

    # -- schedules ----------------------------------------------------------------------
    def _scheduler(self) -> Any:
        scheduler = self.app.scheduler
        if scheduler is None:
            raise SchedulerNotConfiguredError()
        return scheduler

    async def list_schedules(self, enabled_only: bool = False) -> list[dict[str, Any]]:
        schedules = await _maybe_await(self._scheduler().list_scheduled_tasks())
        return [s.to_dict() for s in schedules if s.enabled or not enabled_only]

    async def get_schedule(self, schedule_id: str) -> dict[str, Any] | None:
        found = await _maybe_await(self._scheduler().get_scheduled_task(schedule_id))
        return found.to_dict() if found is not None else None

    def _check_schedule_input(self, task_name: Any, args: Any, kwargs: Any,
                              priority: Any) -> None:
        if not isinstance(task_name, str) or not task_name:
            raise ValueError("task_name must be the name of a registered task")
        if task_name not in self.app.registry:
            raise TaskNotFoundError(task_name)
        if args is not None and not isinstance(args, (list, tuple)):
            raise ValueError(f"args must be a list, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError(f"kwargs must be an object/dict, got {type(kwargs).__name__}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ValueError(f"priority must be an integer, got {priority!r}")

    async def create_schedule_cron(self, task_name: str, cron: str, args: Sequence[Any] | None = None,
                                   kwargs: dict[str, Any] | None = None, enabled: bool = True,
                                   description: str | None = None, priority: int = 0,
                                   **options: Any) -> str:
        """Schedule ``task_name`` on a five-field cron expression; returns the schedule id."""
        scheduler = self._scheduler()
        self._check_schedule_input(task_name, args, kwargs, priority)
        if not isinstance(cron, str) or not cron.strip():
            raise ValueError("cron must be a cron expression such as '*/5 * * * *'")
        return await _maybe_await(scheduler.schedule_cron(
            task_name, cron, args=tuple(args or ()), kwargs=kwargs or {}, enabled=bool(enabled),
            description=description, priority=priority, **options))

    async def create_schedule_interval(self, task_name: str, interval: float,
                                       args: Sequence[Any] | None = None,
                                       kwargs: dict[str, Any] | None = None, enabled: bool = True,
                                       description: str | None = None, priority: int = 0,
                                       **options: Any) -> str:
        """Run ``task_name`` every ``interval`` seconds; returns the schedule id."""
        scheduler = self._scheduler()
        self._check_schedule_input(task_name, args, kwargs, priority)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval must be a number of seconds greater than zero, got {interval!r}")
        return await _maybe_await(scheduler.schedule_interval(
            task_name, float(interval), args=tuple(args or ()), kwargs=kwargs or {},
            enabled=bool(enabled), description=description, priority=priority, **options))

    async def enable_schedule(self, schedule_id: str) -> bool:
        return bool(await _maybe_await(self._scheduler().enable_task(schedule_id)))

    async def disable_schedule(self, schedule_id: str) -> bool:
        return bool(await _maybe_await(self._scheduler().disable_task(schedule_id)))

    async def delete_schedule(self, schedule_id: str) -> bool:
        return bool(await _maybe_await(self._scheduler().unschedule(schedule_id)))

    async def run_schedule_now(self, schedule_id: str) -> str:
        """Submit one run of the schedule immediately; returns the task id."""
        scheduler = self._scheduler()
        if await _maybe_await(scheduler.get_scheduled_task(schedule_id)) is None:
            raise NotFoundError(f"No schedule with id {schedule_id!r}")
        await self._ready()
        return str(await _maybe_await(scheduler.run_now(schedule_id)))

    async def get_scheduler_stats(self) -> dict[str, Any]:
        """The scheduler's own stats plus 0.1.8's ``running``, ``total_schedules``, ...

        Ours (``is_running``, ``total``, ``enabled`` = count, ``disabled``) stay;
        the 0.1.8 names are filled from them when the scheduler does not give them.
        """
        scheduler = self._scheduler()
        getter = getattr(scheduler, "get_stats", None)
        stats = dict(await _maybe_await(getter())) if getter is not None else {}
        running = bool(scheduler.is_running)
        stats.setdefault("is_running", running)
        stats.setdefault("running", running)
        stats.setdefault("check_interval", getattr(scheduler, "check_interval", None))
        if not {"total", "enabled"} <= stats.keys():
            schedules = await self.list_schedules()
            stats.setdefault("total", len(schedules))
            stats.setdefault("enabled", sum(bool(s.get("enabled")) for s in schedules))
        stats.setdefault("total_schedules", stats["total"])
        stats.setdefault("enabled_schedules", stats["enabled"])
        stats.setdefault("disabled_schedules", stats["total_schedules"] - stats["enabled_schedules"])
        return stats


def _definition_dict(definition: TaskDefinition) -> dict[str, Any]:
    """A task's ``to_dict()`` plus ``qualname`` (0.1.8 reported where the function is defined)."""
    info = definition.to_dict()
    info.setdefault("qualname", getattr(definition.func, "__qualname__", definition.name))
    return info


def _record_from_letter(letter: DeadLetter) -> dict[str, Any]:
    """A record-shaped dict for a dead letter whose result record has expired or never existed."""
    payload = letter.payload or {}
    return {
        "task_id": letter.task_id, "status": TaskStatus.FAILED.value,
        "task_name": letter.task_name, "result": None, "error": letter.error,
        "submitted_at": payload.get("submitted_at"), "started_at": None,
        "finished_at": letter.failed_at.isoformat(), "retries": payload.get("current_retry", 0),
        "args": payload.get("args") or [], "kwargs": payload.get("kwargs") or {},
        "traceback": None, "priority": payload.get("priority", 0),
        "queue": payload.get("queue", "default"), "worker": None, "next_retry_at": None,
        "dead_lettered": True, "runtime": None,
    }


def _timeline(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The states a record has passed through, reconstructed from its timestamps."""
    steps: list[dict[str, Any]] = []
    if item.get("submitted_at"):
        steps.append({"status": "pending", "at": item["submitted_at"]})
    retries = int(item.get("retries") or 0)
    if retries:
        steps.append({"status": "retrying", "at": None, "retries": retries,
                      "next_retry_at": item.get("next_retry_at")})
    if item.get("started_at"):
        steps.append({"status": "running", "at": item["started_at"], "attempt": retries + 1})
    if item.get("finished_at") or item["status"] not in ("pending", "running"):
        if item["status"] not in ("pending", "running", "retrying"):
            steps.append({"status": item["status"], "at": item.get("finished_at")})
        elif item["status"] == "retrying" and not retries:
            steps.append({"status": "retrying", "at": None})
    if item.get("dead_letter"):
        steps.append({"status": DEAD_LETTERED, "at": item["dead_letter"].get("failed_at")})
    return steps
