"""PostgreSQL schedule store (asyncpg).

URL: ``postgresql://user:password@host:5432/dbname`` (``postgres://`` too).
Extra query parameters understood here: ``schema`` (tables go into that
schema, created if missing) and ``table_prefix``; the rest go to asyncpg.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._sql import Session, SQLScheduleStore, check_identifier

try:
    import asyncpg
except ImportError:  # pragma: no cover - depends on the installed extras
    asyncpg = None

__all__ = ["PostgresScheduleStore"]

_MISSING = (
    "The PostgreSQL schedule store needs asyncpg: pip install flowrra[postgresql]"
)


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """Remove the parameters we interpret from ``url``; return (dsn, ours)."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("schema", "table_prefix"):
            ours[key] = value
        else:
            rest.append((key, value))
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    dsn = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return dsn, ours


class _PgSession:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        status = await self._conn.execute(sql, *params)
        last = status.rsplit(" ", 1)[-1] if status else ""
        return int(last) if last.isdigit() else 0

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(sql, *params)]


class PostgresScheduleStore(SQLScheduleStore):
    """Schedules in PostgreSQL; safe for any number of scheduler processes."""

    kind = "postgresql"
    placeholder = "$"

    def __init__(
        self, url: str, *, schema: str | None = None, table_prefix: str | None = None,
        min_size: int = 1, max_size: int = 4, **connect_kwargs: Any,
    ) -> None:
        if asyncpg is None:
            raise ImportError(_MISSING)
        dsn, ours = _split_url(url)
        super().__init__(table_prefix if table_prefix is not None
                         else ours.get("table_prefix", "flowrra_"))
        schema = schema if schema is not None else ours.get("schema")
        self.schema = check_identifier(schema, "schema") if schema else None
        self.dsn = dsn
        self._pool_args = {"min_size": min_size, "max_size": max_size, **connect_kwargs}
        self._pool: Any = None

    def __repr__(self) -> str:
        where = urlsplit(self.dsn)
        return f"PostgresScheduleStore({where.hostname}:{where.port}{where.path}, schema={self.schema})"

    def _table(self, name: str) -> str:
        table = super()._table(name)
        return f'"{self.schema}".{table}' if self.schema else table

    async def _connect(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, **self._pool_args)

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _session(self, transaction: bool = False) -> AsyncIterator[Session]:
        if self._pool is None:
            raise RuntimeError("PostgreSQL schedule store is not open")
        async with self._pool.acquire() as conn:
            if transaction:
                async with conn.transaction():
                    yield _PgSession(conn)
            else:
                yield _PgSession(conn)

    @asynccontextmanager
    async def _migration_session(self) -> AsyncIterator[Session]:
        async with self._session(transaction=True) as session:
            key = f"flowrra.scheduler.migrate:{self.schema or ''}:{self.table_prefix}"
            await session.execute("SELECT pg_advisory_xact_lock(hashtext($1))", (key,))
            if self.schema:
                await session.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            yield session
