"""Persistent schedules for Flowrra: cron, fixed intervals and one-time runs.

>>> scheduler = create_scheduler(app)                      # SQLite file in the cwd
>>> await scheduler.schedule_cron("reports.daily", "0 7 * * mon-fri", timezone="Europe/London")
>>> await scheduler.start()

Stores: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
``postgresql://`` / ``postgres://`` (asyncpg) and ``mysql://`` (aiomysql).
See docs/scheduler.md for the policies (DST, missed runs, exactly once).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .base import SchedulerBackend, ScheduleStore
from .cron import CronExpression
from .memory import MemoryScheduleStore
from .models import ScheduledTask, ScheduleType, slot_task_id
from .scheduler import DEFAULT_DATABASE_URL, Scheduler, UnknownTaskError
from .sqlite import SQLiteScheduleStore

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SUPPORTED_SCHEMES",
    "CronExpression",
    "MemoryScheduleStore",
    "SQLiteScheduleStore",
    "ScheduleStore",
    "ScheduleType",
    "ScheduledTask",
    "Scheduler",
    "SchedulerBackend",
    "UnknownTaskError",
    "create_scheduler",
    "get_scheduler_backend",
    "run_scheduler",
    "slot_task_id",
]

SUPPORTED_SCHEMES = (
    "memory://",
    "sqlite:///relative/path.db",
    "sqlite:////absolute/path.db",
    "postgresql://",
    "postgres://",
    "mysql://",
)


def get_scheduler_backend(url: str | ScheduleStore) -> ScheduleStore:
    """Build the schedule store for ``url`` (a store instance is returned as is).

    Raises ValueError for an unsupported URL and ImportError (naming the extra
    to install) when the database driver is missing.
    """
    if isinstance(url, ScheduleStore):
        return url
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"Unsupported scheduler backend URL {url!r}; supported: {', '.join(SUPPORTED_SCHEMES)}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryScheduleStore()
    if scheme == "sqlite":
        return SQLiteScheduleStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresScheduleStore

        return PostgresScheduleStore(url)
    if scheme in ("mysql", "mariadb"):
        from .mysql import MySQLScheduleStore

        return MySQLScheduleStore(url)
    raise ValueError(
        f"Unsupported scheduler backend URL scheme {scheme + '://'!r}; "
        f"supported: {', '.join(SUPPORTED_SCHEMES)}"
    )


def create_scheduler(
    app: Any, backend: str | ScheduleStore | None = None, check_interval: float = 60.0,
    **options: Any,
) -> Scheduler:
    """The scheduler for ``app``; what ``Flowrra.create_scheduler`` returns.

    ``backend`` None means ``app.config.scheduler.database_url`` when set,
    else the SQLite file ``flowrra_schedules.db`` in the working directory.
    """
    if backend is None:
        config = getattr(getattr(app, "config", None), "scheduler", None)
        backend = getattr(config, "database_url", None) or DEFAULT_DATABASE_URL
    return Scheduler(app, backend, check_interval, **options)


async def run_scheduler(
    app: Any, stop_event: asyncio.Event, scheduler: Scheduler | None = None
) -> Scheduler:
    """Run a scheduler for ``app`` until ``stop_event`` is set (for the CLI).

    Uses ``scheduler``, else ``app.scheduler`` when the app has one, else a new
    one built from ``app.config.scheduler``. The app itself is not started or
    stopped here.
    """
    if scheduler is None:
        scheduler = getattr(app, "scheduler", None)
    if scheduler is None:
        config = getattr(getattr(app, "config", None), "scheduler", None)
        interval = getattr(config, "check_interval", None) or 60.0
        scheduler = create_scheduler(app, check_interval=interval)
    await scheduler.start()
    try:
        await stop_event.wait()
    finally:
        await scheduler.stop()
    return scheduler
