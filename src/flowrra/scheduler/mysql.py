"""MySQL / MariaDB schedule store (aiomysql).

URL: ``mysql://user:password@host:3306/dbname`` (the database must exist).
Query parameters: ``table_prefix``, ``charset`` (default utf8mb4).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._sql import Session, SQLScheduleStore

try:
    import aiomysql
    from pymysql.constants import CLIENT
except ImportError:  # pragma: no cover - depends on the installed extras
    aiomysql = None
    CLIENT = None

__all__ = ["MySQLScheduleStore"]

log = logging.getLogger("flowrra.scheduler.mysql")

if aiomysql is not None:

    class _Cursor(aiomysql.Cursor):
        """Logs server notes instead of raising Python warnings.

        ``CREATE TABLE IF NOT EXISTS`` and ``INSERT IGNORE`` of an existing id
        produce notes that are expected here.
        """

        async def _show_warnings(self, conn: Any) -> None:
            for row in await conn.show_warnings() or ():
                log.debug("MySQL: %s", row[-1])

_MISSING = "The MySQL schedule store needs aiomysql: pip install flowrra[mysql]"


class _MySQLSession:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._cursor.execute(sql, tuple(params) or None)
        return int(self._cursor.rowcount or 0)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        await self._cursor.execute(sql, tuple(params) or None)
        return [tuple(r) for r in await self._cursor.fetchall()]


class MySQLScheduleStore(SQLScheduleStore):
    """Schedules in MySQL or MariaDB; safe for any number of scheduler processes."""

    kind = "mysql"
    placeholder = "%s"
    ts_type = "DATETIME(6)"
    float_type = "DOUBLE"
    text_type = "LONGTEXT"
    table_options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    inline_index = True
    insert_prefix = "INSERT IGNORE INTO"
    insert_suffix = ""

    def __init__(
        self, url: str, *, table_prefix: str | None = None, minsize: int = 1,
        maxsize: int = 4, **connect_kwargs: Any,
    ) -> None:
        if aiomysql is None:
            raise ImportError(_MISSING)
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb", "mysql+aiomysql"):
            raise ValueError(f"not a mysql:// URL: {url!r}")
        query = dict(parse_qsl(parts.query))
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ValueError(f"the MySQL URL {url!r} must name a database: mysql://host/dbname")
        super().__init__(table_prefix if table_prefix is not None
                         else query.get("table_prefix", "flowrra_"))
        self.database = database
        self._connect_args: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "db": database,
            "charset": query.get("charset", "utf8mb4"),
            "autocommit": True,
            # rowcount = rows matched, not rows changed: the conditional updates rely on it
            "client_flag": CLIENT.FOUND_ROWS,
            "minsize": minsize,
            "maxsize": maxsize,
            **connect_kwargs,
        }
        self._pool: Any = None

    def __repr__(self) -> str:
        args = self._connect_args
        return f"MySQLScheduleStore({args['host']}:{args['port']}/{self.database})"

    async def _connect(self) -> None:
        self._pool = await aiomysql.create_pool(**self._connect_args)

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    @asynccontextmanager
    async def _session(self, transaction: bool = False) -> AsyncIterator[Session]:
        if self._pool is None:
            raise RuntimeError("MySQL schedule store is not open")
        async with self._pool.acquire() as conn, conn.cursor(_Cursor) as cursor:
            if not transaction:
                yield _MySQLSession(cursor)
                return
            await conn.begin()
            try:
                yield _MySQLSession(cursor)
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def _migration_session(self) -> AsyncIterator[Session]:
        # DDL commits implicitly in MySQL, so a named lock (held by this
        # connection) keeps concurrent processes from migrating at once.
        name = f"flowrra_sched_{self.database}_{self.table_prefix}"[:64]
        async with self._session() as session:
            rows = await session.fetch("SELECT GET_LOCK(%s, 120)", (name,))
            if not rows or rows[0][0] != 1:
                raise TimeoutError(f"could not take the MySQL lock {name!r} to migrate")
            try:
                yield session
            finally:
                await session.execute("SELECT RELEASE_LOCK(%s)", (name,))
