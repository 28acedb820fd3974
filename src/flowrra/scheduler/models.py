"""Schedule records and the time arithmetic shared by every store."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from .cron import CronExpression, _resolve_zone

__all__ = [
    "KINDS",
    "MISSED_POLICIES",
    "ScheduleType",
    "ScheduledTask",
    "canonical_json",
    "from_iso",
    "slot_task_id",
    "to_iso",
    "utc",
]

KINDS = ("cron", "interval", "once")
MISSED_POLICIES = ("skip", "run_once")
_US = 1_000_000
MIN_INTERVAL = 0.001  # seconds
#: Bounds that keep every schedule runnable: a NaN, infinite, negative or absurd
#: option would otherwise make the scheduler retry the same slot forever.
MAX_INTERVAL = 366 * 86400.0  # a year
MAX_RETRIES = 100
MAX_RETRY_DELAY = 86400.0  # a day
MAX_PRIORITY = 2**31 - 1


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive values are taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_iso(dt: datetime | None) -> str | None:
    return None if dt is None else utc(dt).isoformat()


def from_iso(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return None if value is None else utc(value)
    return utc(datetime.fromisoformat(value))


def _normalise(value: Any) -> Any:
    """JSON-ready copy with numbers normalised so that 1 == 1.0 (bools stay bools)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"schedule arguments must be finite numbers, got {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    raise ValueError(
        f"schedule arguments must be JSON values (str, number, bool, None, list, dict); "
        f"got {type(value).__name__}"
    )


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, numbers compared by value."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dump_json(value: Any) -> str:
    """JSON text that keeps the caller's values (validated like canonical_json)."""
    _normalise(value)
    return json.dumps(value, ensure_ascii=False)


def slot_task_id(schedule_id: str, slot: datetime) -> str:
    """The deterministic task id of one slot of one schedule."""
    return f"sched:{schedule_id}:{utc(slot).strftime('%Y%m%dT%H%M%S.%fZ')}"


class ScheduleType(Enum):
    """The kind of a schedule as flowrra 0.1.8 named it (our ``kind`` field)."""

    CRON = "cron"
    INTERVAL = "interval"
    ONE_TIME = "one_time"


# Our ``kind`` values and 0.1.8's ScheduleType differ only for one-time runs.
_TYPE_OF_KIND = {"cron": ScheduleType.CRON, "interval": ScheduleType.INTERVAL,
                 "once": ScheduleType.ONE_TIME}


def _interval_text(interval: float | None) -> str:
    """``str(interval)`` as 0.1.8 stored it, except whole numbers lose ``.0``.

    The stores keep intervals as floats, so 60 and 60.0 are indistinguishable
    after a round trip; the integer form is the one the 0.1.8 docs show.
    """
    if interval is None:
        return ""
    value = float(interval)
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass
class ScheduledTask:
    """One persistent schedule. Datetimes are aware UTC."""

    id: str
    task_name: str
    kind: str
    cron: str | None = None
    interval: float | None = None
    run_at: datetime | None = None
    timezone: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    description: str | None = None
    priority: int = 0
    max_retries: int = 3
    retry_delay: float = 1.0
    missed: str = "skip"
    anchor_at: datetime | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    run_count: int = 0
    claimed_by: str | None = None
    claim_until: datetime | None = None

    # -- serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 UTC strings)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("claimed_by", "claim_until"):
                continue
            value = getattr(self, f.name)
            data[f.name] = to_iso(value) if isinstance(value, datetime) else value
        data["args"] = list(self.args)
        data["kwargs"] = dict(self.kwargs)
        data["schedule_type"] = self.schedule_type.value
        data["schedule"] = self.schedule
        data["schedule_text"] = self.schedule_text
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduledTask:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "kind" not in values and "schedule_type" in data:  # a 0.1.8-shaped dict
            values.update(_from_type(data["schedule_type"], data.get("schedule")))
        for f in fields(cls):
            if f.name.endswith("_at") or f.name == "claim_until":
                values[f.name] = from_iso(values.get(f.name))
        return cls(**values)

    @property
    def schedule_type(self) -> ScheduleType:
        """0.1.8's name for :attr:`kind`."""
        return _TYPE_OF_KIND[self.kind]

    @property
    def schedule(self) -> str:
        """0.1.8's schedule string: the cron text, the interval or run_at in ISO 8601."""
        if self.kind == "cron":
            return self.cron or ""
        if self.kind == "interval":
            return _interval_text(self.interval)
        return to_iso(self.run_at) or ""

    @property
    def schedule_text(self) -> str:
        """Human-readable schedule: the cron text, ``every Ns`` or ``once at ...``."""
        if self.kind == "cron":
            return f"{self.cron} ({self.timezone})"
        if self.kind == "interval":
            return f"every {self.interval:g}s"
        return f"once at {to_iso(self.run_at)}"

    # -- identity ---------------------------------------------------------------
    def identity(self) -> str:
        """Canonical text of what makes two schedules "the same"."""
        if self.kind == "cron":
            spec: Any = CronExpression(self.cron or "", self.timezone).canonical
        elif self.kind == "interval":
            spec = self.interval
        else:
            spec = to_iso(self.run_at)
        doc = {
            "task": self.task_name,
            "kind": self.kind,
            "spec": spec,
            "args": list(self.args),
            "kwargs": self.kwargs,
        }
        return canonical_json(doc)

    def default_id(self) -> str:
        digest = hashlib.sha256(self.identity().encode()).hexdigest()
        return f"{self.kind}-{digest[:20]}"

    # -- time arithmetic ----------------------------------------------------------
    def _validate_options(self) -> None:
        if not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= MAX_RETRIES:
            raise ValueError(f"max_retries must be an integer from 0 to {MAX_RETRIES}, "
                             f"got {self.max_retries!r}")
        delay = self.retry_delay
        if not isinstance(delay, (int, float)) or not math.isfinite(delay) \
                or not 0 <= delay <= MAX_RETRY_DELAY:
            raise ValueError(f"retry_delay must be a number of seconds from 0 to "
                             f"{MAX_RETRY_DELAY:g}, got {delay!r}")
        if not isinstance(self.priority, int) or abs(self.priority) > MAX_PRIORITY:
            raise ValueError(f"priority must be an integer between -{MAX_PRIORITY} and "
                             f"{MAX_PRIORITY}, got {self.priority!r}")
        if self.kind == "interval" and self.interval is not None and self.interval > MAX_INTERVAL:
            raise ValueError(f"interval must be at most {MAX_INTERVAL:g} seconds (a year), "
                             f"got {self.interval!r}")

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.missed not in MISSED_POLICIES:
            raise ValueError(
                f"missed must be one of {', '.join(MISSED_POLICIES)}, got {self.missed!r}"
            )
        _resolve_zone(self.timezone)
        if not self.task_name or len(self.task_name) > 255:
            raise ValueError("task_name must be a string of 1-255 characters")
        if self.description is not None and not isinstance(self.description, str):
            raise ValueError("description must be a string or None")
        if self.kind == "cron":
            if not isinstance(self.cron, str) or len(self.cron) > 255:
                raise ValueError("cron must be a string of at most 255 characters")
            CronExpression(self.cron or "", self.timezone)
        elif self.kind == "interval":
            if (self.interval is None or not math.isfinite(self.interval)
                    or not self.interval >= MIN_INTERVAL):
                raise ValueError(
                    f"interval must be a positive number of seconds (at least {MIN_INTERVAL}), "
                    f"got {self.interval!r}"
                )
        elif self.run_at is None:
            raise ValueError("a one-time schedule needs run_at")
        self._validate_options()
        canonical_json([self.args, self.kwargs])

    def _interval_slot(self, k: int) -> datetime:
        step = round((self.interval or 0) * _US)
        return utc(self.anchor_at or self.created_at or datetime.now(UTC)) + timedelta(
            microseconds=k * step
        )

    def first_after(self, moment: datetime) -> datetime | None:
        """The first slot strictly after ``moment`` (None when there is none)."""
        if self.kind == "cron":
            return CronExpression(self.cron or "", self.timezone).next_after(utc(moment))
        if self.kind == "interval":
            anchor = utc(self.anchor_at or moment)
            step = round((self.interval or 0) * _US)
            elapsed = (utc(moment) - anchor) // timedelta(microseconds=1)
            k = max(1, elapsed // step + 1)
            return self._interval_slot(k)
        run_at = utc(self.run_at) if self.run_at else None
        return run_at if run_at is not None and run_at > utc(moment) else None

    def following(self, slot: datetime) -> datetime | None:
        """The slot that comes after the fired ``slot``."""
        if self.kind == "once":
            return None
        return self.first_after(slot)

    def initial_next_run(self, now: datetime) -> datetime | None:
        """The first slot of a schedule created (or enabled) at ``now``."""
        if self.kind == "once":
            if self.run_count or self.run_at is None:
                return None
            return max(utc(self.run_at), utc(now))
        return self.first_after(now)


def _from_type(schedule_type: Any, schedule: Any) -> dict[str, Any]:
    """Our fields for a 0.1.8 ``(schedule_type, schedule)`` pair."""
    kind = ScheduleType(getattr(schedule_type, "value", schedule_type))
    if kind is ScheduleType.CRON:
        return {"kind": "cron", "cron": schedule}
    if kind is ScheduleType.INTERVAL:
        return {"kind": "interval", "interval": float(schedule)}
    return {"kind": "once", "run_at": from_iso(schedule)}
