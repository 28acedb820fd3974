"""The schedule store names flowrra 0.1.8 exported, kept for code written for it.

New code should use :func:`flowrra.scheduler.get_scheduler_backend` and the
``*ScheduleStore`` classes; these names are thin aliases of them.

The PostgreSQL and MySQL classes are imported on first access (module
``__getattr__``), so importing this module never needs asyncpg or aiomysql.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ScheduleStore
from .sqlite import SQLiteScheduleStore

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ builds the subclasses
    from .mysql import MySQLScheduleStore as MySQLSchedulerBackend
    from .postgres import PostgresScheduleStore as PostgreSQLSchedulerBackend

__all__ = [
    "BaseSchedulerBackend",
    "MySQLSchedulerBackend",
    "PostgreSQLSchedulerBackend",
    "SQLiteSchedulerBackend",
    "get_scheduler_backend",
]

#: 0.1.8's names are our classes themselves, so isinstance checks written for
#: 0.1.8 hold for every store our factories build.
BaseSchedulerBackend = ScheduleStore
SQLiteSchedulerBackend = SQLiteScheduleStore  # SQLiteSchedulerBackend(database_path)

_LAZY = {"PostgreSQLSchedulerBackend": (".postgres", "PostgresScheduleStore"),
         "MySQLSchedulerBackend": (".mysql", "MySQLScheduleStore")}


def __getattr__(name: str) -> Any:
    """Import the driver-backed stores only when someone asks for them."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module, __package__), attr)


def get_scheduler_backend(url: str | Path | ScheduleStore | None = None) -> ScheduleStore:
    """0.1.8's factory: None gives the default SQLite file, a plain path an SQLite file;
    URLs go to :func:`flowrra.scheduler.get_scheduler_backend`."""
    if url is None:
        return SQLiteScheduleStore()
    if isinstance(url, Path) or (isinstance(url, str) and "://" not in url):
        return SQLiteScheduleStore(url)
    from . import get_scheduler_backend as ours

    return ours(url)
