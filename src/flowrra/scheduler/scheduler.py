"""The Scheduler service: persistent cron, interval and one-time schedules.

How a slot fires (the same with one scheduler process or fifty):

1. a scheduler wakes at the earliest ``next_run_at`` and lists the due rows;
2. it *claims* a row with a conditional update (only one process wins);
3. it submits the task under a deterministic id, ``sched:<schedule>:<slot>``;
4. it *finishes* the slot with a second conditional update that advances
   ``next_run_at``.

A process that dies between 3 and 4 leaves a lease that expires after
``claim_timeout``; the next scheduler submits the same task id again and the
broker drops the duplicate, so the slot is neither lost nor doubled.

Between slots each scheduler sleeps until the earliest due time, but at most
``poll_interval`` (1 s) at a time: it then reads a change counter (one
single-row select) and re-plans when another process, or the UI, changed any
schedule. Every ``check_interval`` it re-plans regardless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flowrra.exceptions import TaskNotFoundError

from .base import ScheduleStore
from .cron import _resolve_zone
from .models import ScheduledTask, slot_task_id, to_iso, utc

__all__ = ["DEFAULT_DATABASE_URL", "Scheduler", "UnknownTaskError"]

log = logging.getLogger("flowrra.scheduler")

DEFAULT_DATABASE_URL = "sqlite:///flowrra_schedules.db"
_OPTIONS = ("description", "priority", "max_retries", "retry_delay", "missed", "cron", "timezone")


class UnknownTaskError(TaskNotFoundError, ValueError):
    """Raised when a schedule names a task the app does not know.

    A :class:`~flowrra.exceptions.TaskNotFoundError` like ``submit`` raises,
    and also a ``ValueError`` because flowrra 0.1.8's scheduler raised that.
    """


def _unknown_task(name: str) -> Exception:
    return UnknownTaskError(name)


def _default_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _number(value: Any, name: str, kind: type[int] | type[float], what: str = "a number") -> Any:
    """``kind(value)``, with every failure (NaN to int, a 400-digit int to float) a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        return kind(value)
    except (OverflowError, ValueError):
        raise ValueError(f"{name} is out of range: {value!r}") from None


class Scheduler:
    """Fires persistent schedules by submitting tasks to ``app``.

    ``backend`` is a store, a URL (see :func:`get_scheduler_backend`) or None
    for the SQLite file ``flowrra_schedules.db``. ``clock`` returns the current
    aware datetime (tests inject their own). A slot later than
    ``misfire_grace`` seconds counts as missed and follows the schedule's
    ``missed`` policy.
    """

    def __init__(
        self,
        app: Any = None,
        backend: ScheduleStore | str | None = None,
        check_interval: float = 60.0,
        *,
        clock: Callable[[], datetime] | None = None,
        poll_interval: float = 1.0,
        claim_timeout: float = 30.0,
        misfire_grace: float = 60.0,
        retry_backoff: float = 5.0,
        batch_size: int = 100,
        owner: str | None = None,
    ) -> None:
        from . import get_scheduler_backend

        if check_interval <= 0 or poll_interval <= 0 or claim_timeout <= 0:
            raise ValueError("check_interval, poll_interval and claim_timeout must be positive")
        if misfire_grace < 0:
            raise ValueError("misfire_grace must be >= 0")
        self.app = app
        self._owns_backend = not isinstance(backend, ScheduleStore)
        self.backend = get_scheduler_backend(backend or DEFAULT_DATABASE_URL)
        self.check_interval = float(check_interval)
        self.poll_interval = float(poll_interval)
        self.claim_timeout = float(claim_timeout)
        self.misfire_grace = float(misfire_grace)
        self.retry_backoff = float(retry_backoff)
        self.batch_size = int(batch_size)
        self.owner = (owner or _default_owner())[:64]
        self._clock = clock or (lambda: datetime.now(UTC))
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._counts: Counter[str] = Counter()
        self._last_tick: datetime | None = None

    def __repr__(self) -> str:
        return f"Scheduler({self.backend!r}, running={self.is_running})"

    # -- plumbing --------------------------------------------------------------
    def now(self) -> datetime:
        """The scheduler's clock, as an aware UTC datetime."""
        return utc(self._clock())

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await self.backend.open()
                self._opened = True

    def _notify(self) -> None:
        self._wake.set()

    def _task_name(self, task: Any) -> str:
        registry = getattr(self.app, "registry", None)
        if isinstance(task, str):
            name = task
        elif registry is not None and hasattr(registry, "resolve_name"):
            name = registry.resolve_name(task)
        else:
            name = getattr(task, "name", None)
            if not isinstance(name, str):
                name = f"{task.__module__}.{task.__qualname__}"
        if not name:
            raise ValueError("task_name must be a non-empty string")
        if registry is not None and not registry.is_registered(name):
            raise _unknown_task(name)
        return name

    # -- creating schedules ------------------------------------------------------
    async def schedule_cron(
        self, task_name: Any, cron: str, args: Any = (), kwargs: dict[str, Any] | None = None,
        enabled: bool = True, description: str | None = None, max_retries: int = 3,
        retry_delay: float = 1.0, priority: int = 0, task_id: str | None = None,
        timezone: str = "UTC", missed: str = "skip",
    ) -> str:
        """Run ``task_name`` at the times of a five-field cron expression."""
        spec = {"cron": " ".join(str(cron).split()) if isinstance(cron, str) else cron}
        return await self._create("cron", spec, task_name, args, kwargs, enabled, description,
                                  max_retries, retry_delay, priority, task_id, timezone, missed)

    async def schedule_interval(
        self, task_name: Any, interval: float | timedelta, args: Any = (),
        kwargs: dict[str, Any] | None = None, enabled: bool = True,
        description: str | None = None, max_retries: int = 3, retry_delay: float = 1.0,
        priority: int = 0, task_id: str | None = None, timezone: str = "UTC",
        missed: str = "skip",
    ) -> str:
        """Run ``task_name`` every ``interval`` seconds, anchored to the creation time."""
        if isinstance(interval, timedelta):
            interval = interval.total_seconds()
        seconds = _number(interval, "interval", float, "a number of seconds")
        return await self._create("interval", {"interval": seconds}, task_name, args,
                                  kwargs, enabled, description, max_retries, retry_delay,
                                  priority, task_id, timezone, missed)

    async def schedule_once(
        self, task_name: Any, run_at: datetime, args: Any = (),
        kwargs: dict[str, Any] | None = None, enabled: bool = True,
        description: str | None = None, max_retries: int = 3, retry_delay: float = 1.0,
        priority: int = 0, task_id: str | None = None, timezone: str = "UTC",
        missed: str = "skip",
    ) -> str:
        """Run ``task_name`` once at ``run_at`` (a naive value is read in ``timezone``)."""
        if not isinstance(run_at, datetime):
            raise ValueError(f"run_at must be a datetime, got {run_at!r}")
        if run_at.tzinfo is None:
            run_at = run_at.replace(tzinfo=_resolve_zone(timezone)[0])
        return await self._create("once", {"run_at": utc(run_at)}, task_name, args, kwargs,
                                  enabled, description, max_retries, retry_delay, priority,
                                  task_id, timezone, missed)

    async def _create(
        self, kind: str, spec: dict[str, Any], task_name: Any, args: Any,
        kwargs: dict[str, Any] | None, enabled: bool, description: str | None,
        max_retries: int, retry_delay: float, priority: int, task_id: str | None,
        timezone: str, missed: str,
    ) -> str:
        if isinstance(args, (str, bytes, dict)):
            raise ValueError("args must be a list or tuple of positional arguments")
        if task_id is not None and (not isinstance(task_id, str) or not 0 < len(task_id) <= 191):
            raise ValueError("task_id (the schedule id) must be a string of 1-191 characters")
        now = self.now()
        task = ScheduledTask(
            id=task_id or "", task_name=self._task_name(task_name), kind=kind,
            timezone=_resolve_zone(timezone)[1], args=list(args or ()),
            kwargs=dict(kwargs or {}), enabled=bool(enabled), description=description,
            priority=_number(priority, "priority", int),
            max_retries=_number(max_retries, "max_retries", int),
            retry_delay=_number(retry_delay, "retry_delay", float), missed=missed, anchor_at=now,
            created_at=now, updated_at=now, **spec,
        )
        task.validate()
        task.id = task.id or task.default_id()
        task.next_run_at = task.initial_next_run(now)
        await self._ensure_open()
        return await self._save(task)

    async def _save(self, task: ScheduledTask) -> str:
        existing = await self.backend.get(task.id)
        if existing is None:
            if await self.backend.insert(task):
                log.info("created schedule %s (%s)", task.id, task.schedule_text)
                self._notify()
                return task.id
            existing = await self.backend.get(task.id)  # another process won the race
            if existing is None:
                raise RuntimeError(f"schedule {task.id} vanished while being created")
        merged = replace(task, enabled=existing.enabled, created_at=existing.created_at)
        if existing.identity() != task.identity():
            await self.backend.update(merged, reschedule=True)
            log.info("redefined schedule %s (%s)", task.id, task.schedule_text)
        elif any(getattr(existing, n) != getattr(task, n) for n in _OPTIONS):
            await self.backend.update(merged, reschedule=False)
        self._notify()
        return task.id

    # -- managing schedules ----------------------------------------------------------
    async def unschedule(self, schedule_id: str) -> bool:
        """Delete a schedule; False when it does not exist."""
        await self._ensure_open()
        deleted = await self.backend.delete(schedule_id)
        self._notify()
        return deleted

    async def enable_task(self, schedule_id: str) -> bool:
        """Enable a schedule; its next run is computed from now. False if unknown."""
        await self._ensure_open()
        task = await self.backend.get(schedule_id)
        if task is None:
            return False
        now = self.now()
        found = await self.backend.set_enabled(schedule_id, True, task.initial_next_run(now), now)
        self._notify()
        return found

    async def disable_task(self, schedule_id: str) -> bool:
        """Disable a schedule (kept, but never fired). False if unknown."""
        await self._ensure_open()
        found = await self.backend.set_enabled(schedule_id, False, None, self.now())
        self._notify()
        return found

    async def get_scheduled_task(self, schedule_id: str) -> ScheduledTask | None:
        await self._ensure_open()
        return await self.backend.get(schedule_id)

    async def list_scheduled_tasks(self, enabled_only: bool = False) -> list[ScheduledTask]:
        await self._ensure_open()
        return await self.backend.list(enabled_only=enabled_only)

    async def run_now(self, schedule_id: str) -> str | None:
        """Submit the schedule's task immediately (its timetable is unchanged).

        Returns the new task id, or None when the schedule does not exist.
        """
        task = await self.get_scheduled_task(schedule_id)
        if task is None:
            return None
        task_id = await self._submit(task, None)
        self._counts["manual"] += 1
        return task_id

    # -- firing ------------------------------------------------------------------------
    async def _submit(self, task: ScheduledTask, task_id: str | None) -> str:
        if self.app is None:
            raise RuntimeError("this Scheduler has no app to submit tasks to")
        return await self.app.apply_async(
            task.task_name, args=tuple(task.args), kwargs=dict(task.kwargs),
            priority=task.priority, max_retries=task.max_retries,
            retry_delay=task.retry_delay, task_id=task_id,
        )

    async def _process(self, task: ScheduledTask, now: datetime) -> str | None:
        """Claim, submit and finish one due slot. Returns "fired", "skipped" or None."""
        slot = task.next_run_at
        if slot is None:
            return None
        until = now + timedelta(seconds=self.claim_timeout)
        if not await self.backend.claim(task.id, slot, self.owner, until, now):
            return None  # another scheduler has it
        missed = (now - slot).total_seconds() > self.misfire_grace
        run = not missed or task.missed == "run_once"
        try:
            following = task.first_after(now) if missed else task.following(slot)
            if run:
                await asyncio.wait_for(
                    self._submit(task, slot_task_id(task.id, slot)), self.claim_timeout / 2
                )
        except Exception as exc:
            log.warning("schedule %s: submitting slot %s failed: %r", task.id, slot, exc)
            retry_at = now + timedelta(seconds=self.retry_backoff)
            await self.backend.release(task.id, slot, self.owner, retry_at)
            self._counts["errors"] += 1
            return None
        if not await self.backend.finish(task.id, slot, self.owner, following,
                                         now if run else None):
            log.warning("schedule %s: lease on slot %s expired before it was marked", task.id, slot)
        outcome = "fired" if run else "skipped"
        self._counts[outcome] += 1
        log.info("schedule %s %s slot %s (next %s)", task.id, outcome, to_iso(slot),
                 to_iso(following))
        return outcome

    async def tick(self) -> int:
        """Fire every due slot once; returns how many tasks were submitted.

        The service loop calls this; tests can call it directly with a fake clock.
        """
        await self._ensure_open()
        fired = 0
        for _ in range(1000):  # catch-up rounds; each round advances every due row
            now = self.now()
            self._last_tick = now
            due = await self.backend.due(now, self.batch_size)
            if not due:
                break
            outcomes = [await self._process(task, now) for task in due]
            fired += outcomes.count("fired")
            if not any(outcomes):
                break  # every row was claimed elsewhere or failed: re-plan
        return fired

    # -- the service loop ----------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Open the store (creating the schema) and start firing schedules."""
        if self.is_running:
            return
        await self._ensure_open()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop_task = asyncio.create_task(self._run(), name="flowrra-scheduler")
        log.info("scheduler %s started on %r", self.owner, self.backend)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop after the slot being fired (if any); close a store this scheduler opened."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            self._stopping.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._owns_backend and self._opened:
            self._opened = False
            await self.backend.close()

    async def close(self) -> None:
        """Stop and close the store, whoever created it."""
        await self.stop()
        if self._opened:
            self._opened = False
            await self.backend.close()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
                await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler loop error; retrying")
                await self._sleep(min(self.retry_backoff, self.check_interval))

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when a local change or stop() happens. True if woken."""
        try:
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.0))
        except TimeoutError:
            return False
        self._wake.clear()
        return True

    async def _idle(self) -> None:
        """Wait until the next due time, a change elsewhere, or check_interval."""
        version = await self.backend.change_version()
        wake_at = await self.backend.next_wake_time()
        deadline = self.now() + timedelta(seconds=self.check_interval)
        target = min(wake_at, deadline) if wake_at else deadline
        while not self._stopping.is_set():
            remaining = (target - self.now()).total_seconds()
            if remaining <= 0:
                return
            if await self._sleep(min(remaining, self.poll_interval)):
                return
            if await self.backend.change_version() != version:
                return

    # -- stats ---------------------------------------------------------------------------
    async def get_stats(self) -> dict[str, Any]:
        """Counts, the next run and the service state, for the management API."""
        tasks = await self.list_scheduled_tasks()
        enabled = [t for t in tasks if t.enabled]
        upcoming = [t for t in enabled if t.next_run_at is not None]
        first = min(upcoming, key=lambda t: t.next_run_at or self.now(), default=None)
        return {
            "backend": self.backend.kind,
            "is_running": self.is_running,
            "check_interval": self.check_interval,
            "poll_interval": self.poll_interval,
            "misfire_grace": self.misfire_grace,
            "total": len(tasks),
            "enabled": len(enabled),
            "disabled": len(tasks) - len(enabled),
            "by_kind": {k: sum(t.kind == k for t in tasks) for k in ("cron", "interval", "once")},
            "next_run_at": to_iso(first.next_run_at) if first else None,
            "next_schedule_id": first.id if first else None,
            "next_task_name": first.task_name if first else None,
            "fired": self._counts["fired"],
            "skipped": self._counts["skipped"],
            "run_now": self._counts["manual"],
            "errors": self._counts["errors"],
            "last_check_at": to_iso(self._last_tick),
            "owner": self.owner,
        }
