"""The schedule store names flowrra 0.1.8 exported, kept for code written for it.

New code should use :func:`flowrra.scheduler.get_scheduler_backend` and the
``*ScheduleStore`` classes; these names are thin aliases of them.

The PostgreSQL and MySQL classes are built on first access (module
``__getattr__``), so importing this module never needs asyncpg or aiomysql;
constructing one without its driver raises ImportError naming the extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ScheduleStore
from .sqlite import SQLiteScheduleStore, sqlite_path_from_url

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

#: 0.1.8's abstract base of every schedule store.
BaseSchedulerBackend = ScheduleStore

_DEFAULT_PATH = "flowrra_schedules.db"


class SQLiteSchedulerBackend(SQLiteScheduleStore):
    """0.1.8's ``SQLiteSchedulerBackend(database_path)``: our SQLite store.

    The default file is ours (``flowrra_schedules.db``), not 0.1.8's
    ``.flowrra_schedule.db``, so that both APIs share one schedule file.
    """

    def __init__(self, database_path: str | Path = _DEFAULT_PATH, **options: Any) -> None:
        super().__init__(database_path, **options)

    def __repr__(self) -> str:
        return f"SQLiteSchedulerBackend({self.path!r})"


def _postgres_class() -> type[ScheduleStore]:
    from .postgres import PostgresScheduleStore

    class PostgreSQLSchedulerBackend(PostgresScheduleStore):
        """0.1.8's ``PostgreSQLSchedulerBackend(url)``: our PostgreSQL store."""

    return PostgreSQLSchedulerBackend


def _mysql_class() -> type[ScheduleStore]:
    from .mysql import MySQLScheduleStore

    class MySQLSchedulerBackend(MySQLScheduleStore):
        """0.1.8's ``MySQLSchedulerBackend(url)``: our MySQL/MariaDB store."""

    return MySQLSchedulerBackend


_LAZY = {"PostgreSQLSchedulerBackend": _postgres_class, "MySQLSchedulerBackend": _mysql_class}


def __getattr__(name: str) -> Any:
    """Build the driver-backed classes only when someone asks for them."""
    if name in globals():
        return globals()[name]
    factory = _LAZY.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = factory()
    cls.__module__, cls.__qualname__ = __name__, name
    globals()[name] = cls  # later look-ups (and isinstance checks) see one class
    return cls


def get_scheduler_backend(url: str | ScheduleStore | None = None) -> ScheduleStore:
    """0.1.8's factory: None gives the default SQLite file, a plain path an SQLite file.

    URLs go to :func:`flowrra.scheduler.get_scheduler_backend` (which also
    knows ``memory://``); a ``postgresql://``/``mysql://`` URL gives the classes
    above so that isinstance checks written for 0.1.8 hold.
    """
    if url is None:
        return SQLiteSchedulerBackend()
    if isinstance(url, ScheduleStore):
        return url
    if isinstance(url, (str, Path)) and "://" not in str(url):
        return SQLiteSchedulerBackend(url)
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) else ""
    if scheme in ("postgresql", "postgres"):
        return __getattr__("PostgreSQLSchedulerBackend")(url)
    if scheme in ("mysql", "mariadb"):
        return __getattr__("MySQLSchedulerBackend")(url)
    if scheme == "sqlite":
        return SQLiteSchedulerBackend(sqlite_path_from_url(url))
    from . import get_scheduler_backend as ours

    return ours(url)
