"""SQL behaviour shared by the SQLite, PostgreSQL and MySQL schedule stores.

Dialects only supply connections, placeholders, column types, an
insert-if-absent form and a lock around migrations; every query lives here so
the three databases behave identically.
"""

from __future__ import annotations

import asyncio
import json
import re
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from .base import ScheduleStore
from .models import ScheduledTask, dump_json, utc

__all__ = ["SCHEMA_VERSION", "SQLScheduleStore", "Session"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")

COLUMNS = (
    "id", "task_name", "kind", "cron", "interval_seconds", "run_at", "timezone", "args",
    "kwargs", "enabled", "description", "priority", "max_retries", "retry_delay", "missed",
    "anchor_at", "next_run_at", "last_run_at", "run_count", "claimed_by", "claim_until",
    "created_at", "updated_at",
)
_DEFINITION = (
    "task_name", "kind", "cron", "interval_seconds", "run_at", "timezone", "args", "kwargs",
    "enabled", "description", "priority", "max_retries", "retry_delay", "missed", "updated_at",
)
_TIMES = {"run_at", "anchor_at", "next_run_at", "last_run_at", "claim_until", "created_at",
          "updated_at"}
SCHEMA_VERSION = 1


class Session(Protocol):
    """One connection (inside a transaction when asked for one)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


def check_identifier(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter or underscore and contain only "
            "letters, digits and underscores (at most 41 characters)"
        )
    return value


class SQLScheduleStore(ScheduleStore):
    """Base class of the SQL stores; subclasses implement the dialect hooks."""

    placeholder: ClassVar[str] = "?"  # "?", "%s" or "$" (numbered)
    key_type: ClassVar[str] = "VARCHAR(191)"
    ts_type: ClassVar[str] = "TIMESTAMP(6)"
    float_type: ClassVar[str] = "DOUBLE PRECISION"
    text_type: ClassVar[str] = "TEXT"
    table_options: ClassVar[str] = ""
    inline_index: ClassVar[bool] = False
    insert_prefix: ClassVar[str] = "INSERT INTO"
    insert_suffix: ClassVar[str] = " ON CONFLICT (id) DO NOTHING"

    def __init__(self, table_prefix: str = "flowrra_") -> None:
        if table_prefix:
            check_identifier(table_prefix, "table_prefix")
        self.table_prefix = table_prefix
        self._sql_cache: dict[str, str] = {}
        self._opened = False
        self._open_lock = asyncio.Lock()

    # -- dialect hooks ---------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    def _session(self, transaction: bool = False) -> AbstractAsyncContextManager[Session]: ...

    @abstractmethod
    def _migration_session(self) -> AbstractAsyncContextManager[Session]:
        """A session that holds the database's own lock against concurrent migrations."""

    def _table(self, name: str) -> str:
        return f"{self.table_prefix}{name}"

    def _to_db(self, dt: datetime | None) -> Any:
        return None if dt is None else utc(dt).replace(tzinfo=None)

    def _from_db(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # -- helpers ---------------------------------------------------------------
    @property
    def schedules_table(self) -> str:
        return self._table("schedules")

    @property
    def state_table(self) -> str:
        return self._table("schedule_state")

    @property
    def migrations_table(self) -> str:
        return self._table("schedule_migrations")

    def _sql(self, text: str) -> str:
        cached = self._sql_cache.get(text)
        if cached is None:
            sql = text.format(t=self.schedules_table, s=self.state_table)
            if self.placeholder == "$":
                parts = sql.split("?")
                cached = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
            else:
                cached = sql.replace("?", self.placeholder)
            self._sql_cache[text] = cached
        return cached

    async def _exec(self, s: Session, sql: str, *params: Any) -> int:
        return await s.execute(self._sql(sql), params)

    async def _fetch(self, s: Session, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await s.fetch(self._sql(sql), params)

    async def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        await self._ensure_open()
        async with self._session() as s:
            return await self._fetch(s, sql, *params)

    async def _write(self, sql: str, *params: Any, bump: bool = True) -> int:
        """Run one statement; with ``bump`` also advance the change counter atomically."""
        await self._ensure_open()
        async with self._session(transaction=bump) as s:
            count = await self._exec(s, sql, *params)
            if bump and count:
                await self._exec(s, "UPDATE {s} SET version = version + 1 WHERE id = 1")
            return count

    def _row_params(self, task: ScheduledTask) -> dict[str, Any]:
        values = {
            "id": task.id, "task_name": task.task_name, "kind": task.kind, "cron": task.cron,
            "interval_seconds": task.interval, "timezone": task.timezone,
            "args": dump_json(list(task.args)), "kwargs": dump_json(dict(task.kwargs)),
            "enabled": 1 if task.enabled else 0, "description": task.description,
            "priority": int(task.priority), "max_retries": int(task.max_retries),
            "retry_delay": float(task.retry_delay), "missed": task.missed,
            "run_count": int(task.run_count), "claimed_by": task.claimed_by,
        }
        for name in _TIMES:
            values[name] = self._to_db(getattr(task, name))
        return values

    def _from_row(self, row: Sequence[Any]) -> ScheduledTask:
        data = dict(zip(COLUMNS, row, strict=True))
        for name in _TIMES:
            data[name] = self._from_db(data[name])
        data["interval"] = data.pop("interval_seconds")
        data["args"] = json.loads(data["args"])
        data["kwargs"] = json.loads(data["kwargs"])
        data["enabled"] = bool(data["enabled"])
        data["run_count"] = int(data["run_count"])
        return ScheduledTask(**data)

    # -- schema ------------------------------------------------------------------
    def _migrations(self) -> list[tuple[int, list[str]]]:
        ts, fl, tx = self.ts_type, self.float_type, self.text_type
        index = f"{self.table_prefix}schedules_due"
        columns = [
            f"id {self.key_type} NOT NULL PRIMARY KEY", "task_name VARCHAR(255) NOT NULL",
            "kind VARCHAR(16) NOT NULL", "cron VARCHAR(255)", f"interval_seconds {fl}",
            f"run_at {ts}", "timezone VARCHAR(64) NOT NULL", f"args {tx} NOT NULL",
            f"kwargs {tx} NOT NULL", "enabled SMALLINT NOT NULL", f"description {tx}",
            "priority INTEGER NOT NULL", "max_retries INTEGER NOT NULL",
            f"retry_delay {fl} NOT NULL", "missed VARCHAR(16) NOT NULL", f"anchor_at {ts}",
            f"next_run_at {ts}", f"last_run_at {ts}", "run_count BIGINT NOT NULL DEFAULT 0",
            "claimed_by VARCHAR(64)", f"claim_until {ts}", f"created_at {ts} NOT NULL",
            f"updated_at {ts} NOT NULL",
        ]
        if self.inline_index:
            columns.append(f"INDEX {index} (enabled, next_run_at)")
        v1 = [
            f"CREATE TABLE IF NOT EXISTS {self.schedules_table} "
            f"({', '.join(columns)}){self.table_options}",
            f"CREATE TABLE IF NOT EXISTS {self.state_table} "
            f"(id INTEGER NOT NULL PRIMARY KEY, version BIGINT NOT NULL){self.table_options}",
            f"{self.insert_prefix} {self.state_table} (id, version) VALUES (1, 0)"
            f"{self.insert_suffix}",
        ]
        if not self.inline_index:
            v1.append(
                f"CREATE INDEX IF NOT EXISTS {index} "
                f"ON {self.schedules_table} (enabled, next_run_at)"
            )
        return [(1, v1)]

    async def _migrate(self) -> None:
        async with self._migration_session() as s:
            await s.execute(
                f"CREATE TABLE IF NOT EXISTS {self.migrations_table} (version INTEGER NOT NULL "
                f"PRIMARY KEY, applied_at {self.ts_type} NOT NULL){self.table_options}",
                (),
            )
            rows = await s.fetch(f"SELECT version FROM {self.migrations_table}", ())
            applied = {int(r[0]) for r in rows}
            for version, statements in self._migrations():
                if version in applied:
                    continue
                for statement in statements:
                    await s.execute(statement, ())
                await s.execute(
                    self._sql(
                        f"INSERT INTO {self.migrations_table} (version, applied_at) VALUES (?, ?)"
                    ),
                    (version, self._to_db(datetime.now(UTC))),
                )

    async def schema_version(self) -> int:
        """The highest applied migration (0 before :meth:`open`)."""
        rows = await self._query(f"SELECT MAX(version) FROM {self.migrations_table}")
        return int(rows[0][0] or 0)

    async def _ensure_open(self) -> None:
        if not self._opened:
            await self.open()

    async def open(self) -> None:
        async with self._open_lock:
            if self._opened:
                return
            await self._connect()
            try:
                await self._migrate()
            except BaseException:
                await self._disconnect()
                raise
            self._opened = True

    async def close(self) -> None:
        async with self._open_lock:
            if self._opened:
                self._opened = False
                await self._disconnect()

    # -- definitions ---------------------------------------------------------------
    async def insert(self, task: ScheduledTask) -> bool:
        values = self._row_params(task)
        sql = (
            f"{self.insert_prefix} {{t}} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)}){self.insert_suffix}"
        )
        return await self._write(sql, *(values[c] for c in COLUMNS)) > 0

    async def update(self, task: ScheduledTask, *, reschedule: bool) -> bool:
        values = self._row_params(task)
        names = list(_DEFINITION)
        if reschedule:
            names += ["anchor_at", "next_run_at", "claimed_by", "claim_until"]
            values["claimed_by"] = values["claim_until"] = None
        assignments = ", ".join(f"{n} = ?" for n in names)
        sql = f"UPDATE {{t}} SET {assignments} WHERE id = ?"
        return await self._write(sql, *(values[n] for n in names), task.id) > 0

    async def get(self, schedule_id: str) -> ScheduledTask | None:
        rows = await self._query(f"SELECT {', '.join(COLUMNS)} FROM {{t}} WHERE id = ?", schedule_id)
        return self._from_row(rows[0]) if rows else None

    async def list(self, enabled_only: bool = False) -> list[ScheduledTask]:
        where = " WHERE enabled = 1" if enabled_only else ""
        rows = await self._query(
            f"SELECT {', '.join(COLUMNS)} FROM {{t}}{where} ORDER BY created_at, id"
        )
        return [self._from_row(r) for r in rows]

    async def delete(self, schedule_id: str) -> bool:
        return await self._write("DELETE FROM {t} WHERE id = ?", schedule_id) > 0

    async def set_enabled(
        self, schedule_id: str, enabled: bool, next_run_at: datetime | None, now: datetime
    ) -> bool:
        if enabled:
            changed = await self._write(
                "UPDATE {t} SET enabled = 1, next_run_at = ?, claimed_by = NULL, "
                "claim_until = NULL, updated_at = ? WHERE id = ? AND enabled = 0",
                self._to_db(next_run_at), self._to_db(now), schedule_id,
            )
        else:
            changed = await self._write(
                "UPDATE {t} SET enabled = 0, updated_at = ? WHERE id = ?",
                self._to_db(now), schedule_id,
            )
        if changed:
            return True
        return bool(await self._query("SELECT id FROM {t} WHERE id = ?", schedule_id))

    # -- firing --------------------------------------------------------------------
    async def due(self, now: datetime, limit: int) -> list[ScheduledTask]:
        at = self._to_db(now)
        rows = await self._query(
            f"SELECT {', '.join(COLUMNS)} FROM {{t}} WHERE enabled = 1 AND next_run_at IS NOT "
            "NULL AND next_run_at <= ? AND (claim_until IS NULL OR claim_until <= ?) "
            f"ORDER BY next_run_at, id LIMIT {int(limit)}",
            at, at,
        )
        return [self._from_row(r) for r in rows]

    async def claim(
        self, schedule_id: str, slot: datetime, owner: str, until: datetime, now: datetime
    ) -> bool:
        count = await self._write(
            "UPDATE {t} SET claimed_by = ?, claim_until = ? WHERE id = ? AND enabled = 1 "
            "AND next_run_at = ? AND (claim_until IS NULL OR claim_until <= ?)",
            owner, self._to_db(until), schedule_id, self._to_db(slot), self._to_db(now),
            bump=False,
        )
        return count == 1

    async def finish(
        self,
        schedule_id: str,
        slot: datetime,
        owner: str,
        next_run_at: datetime | None,
        ran_at: datetime | None,
    ) -> bool:
        count = await self._write(
            "UPDATE {t} SET next_run_at = ?, last_run_at = COALESCE(?, last_run_at), "
            "run_count = run_count + ?, claimed_by = NULL, claim_until = NULL "
            "WHERE id = ? AND next_run_at = ? AND claimed_by = ?",
            self._to_db(next_run_at), self._to_db(ran_at), 0 if ran_at is None else 1,
            schedule_id, self._to_db(slot), owner,
        )
        return count == 1

    async def release(
        self, schedule_id: str, slot: datetime, owner: str, retry_at: datetime
    ) -> bool:
        count = await self._write(
            "UPDATE {t} SET claimed_by = NULL, claim_until = ? "
            "WHERE id = ? AND next_run_at = ? AND claimed_by = ?",
            self._to_db(retry_at), schedule_id, self._to_db(slot), owner,
        )
        return count == 1

    async def next_wake_time(self) -> datetime | None:
        rows = await self._query(
            "SELECT MIN(CASE WHEN claim_until IS NOT NULL AND claim_until > next_run_at "
            "THEN claim_until ELSE next_run_at END) FROM {t} "
            "WHERE enabled = 1 AND next_run_at IS NOT NULL"
        )
        return self._from_db(rows[0][0]) if rows else None

    async def change_version(self) -> int:
        rows = await self._query("SELECT version FROM {s} WHERE id = 1")
        return int(rows[0][0]) if rows else 0

