"""Five-field cron expressions with per-expression IANA time zones.

Semantics (Vixie cron):

* fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
  ``jan``-``dec``), day of week (0-7 or ``sun``-``sat``; 0 and 7 are Sunday);
* each field is a comma-separated list of ``*``, ``N``, ``N-M``, optionally
  followed by ``/STEP``; ``N/STEP`` means ``N-<max>/STEP``;
* when both day fields are restricted (neither starts with ``*``), a day
  matches if EITHER matches; otherwise both must match;
* macros: ``@yearly``/``@annually``, ``@monthly``, ``@weekly``,
  ``@daily``/``@midnight``, ``@hourly``.

Time zones and daylight saving time: the fields are matched against the wall
clock of the expression's time zone. A wall time that does not exist because
the clock jumps forward fires at the first instant after the gap (for
America/New_York, ``30 2 * * *`` fires at 03:00 EDT on the spring-forward
day). A wall time that occurs twice because the clock falls back fires once,
at its first occurrence.

:meth:`CronExpression.next_after` jumps field by field (month, day, hour,
minute) instead of scanning minutes, so it needs a few dozen steps at most.
Expressions that can never fire (``0 0 30 2 *``) are rejected when parsed,
by reasoning about month lengths.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["MACROS", "CronExpression"]

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DOW_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# Longest possible month lengths (February counts its leap day).
_MAX_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
# Every (month, day, weekday) combination recurs within the 400-year Gregorian cycle.
_YEAR_SPAN = 401
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day-of-month", 1, 31),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 7, _DOW_NAMES),
)


class _FieldError(ValueError):
    """Raised by the field parser; wrapped with the full expression."""


def _parse_value(token: str, spec: _FieldSpec) -> int:
    if not token:
        raise _FieldError(f"{spec.name}: empty value")
    if spec.names is not None and token.isalpha():
        try:
            return spec.names[token.lower()]
        except KeyError:
            allowed = ", ".join(spec.names)
            raise _FieldError(f"{spec.name}: unknown name {token!r} (use {allowed})") from None
    if not token.isdigit():
        raise _FieldError(f"{spec.name}: {token!r} is not a number")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise _FieldError(
            f"{spec.name}: value {value} out of range {spec.low}-{spec.high}"
        )
    return value


def _parse_part(part: str, spec: _FieldSpec) -> list[int]:
    base, sep, step_text = part.partition("/")
    step = 1
    if sep:
        if not step_text.isdigit() or int(step_text) == 0:
            raise _FieldError(f"{spec.name}: step {step_text!r} must be a positive integer")
        step = int(step_text)
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _parse_value(first, spec), _parse_value(last, spec)
        if low > high:
            raise _FieldError(
                f"{spec.name}: range {base!r} starts after it ends "
                "(wrap-around ranges are not supported; split it into two ranges)"
            )
    else:
        low = _parse_value(base, spec)
        high = spec.high if sep else low
    return list(range(low, high + 1, step))


def _parse_field(text: str, spec: _FieldSpec) -> tuple[int, ...]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _FieldError(f"{spec.name}: empty list item in {text!r}")
        values.update(_parse_part(part, spec))
    if spec.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return tuple(sorted(values))


def _first_at_least(values: tuple[int, ...], value: int) -> int | None:
    index = bisect_left(values, value)
    return values[index] if index < len(values) else None


def _resolve_zone(tz: str | tzinfo) -> tuple[tzinfo, str]:
    if isinstance(tz, tzinfo):
        return tz, str(getattr(tz, "key", None) or tz.tzname(None) or tz)
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"time zone must be an IANA name such as 'Europe/London', got {tz!r}")
    if tz.upper() == "UTC":
        return UTC, "UTC"
    try:
        return ZoneInfo(tz), tz
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {tz!r}: use an IANA name such as 'America/New_York'"
        ) from None


class CronExpression:
    """A parsed cron expression bound to a time zone (default UTC)."""

    def __init__(self, expr: str, tz: str | tzinfo | None = None) -> None:
        if not isinstance(expr, str):
            raise ValueError(f"cron expression must be a string, got {type(expr).__name__}")
        self.expression = expr
        # None means UTC; remembered so that next_run() without a zone can keep
        # 0.1.8's naive-local convention.
        self._zone_given = tz is not None
        self.tzinfo, self.timezone = _resolve_zone("UTC" if tz is None else tz)
        text = expr.strip()
        if text.startswith("@"):
            macro = MACROS.get(text.lower())
            if macro is None:
                raise ValueError(
                    f"Invalid cron expression {expr!r}: unknown macro {text!r} "
                    f"(supported: {', '.join(MACROS)})"
                )
            text = macro
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"Invalid cron expression {expr!r}: expected 5 fields "
                f"(minute hour day-of-month month day-of-week), got {len(fields)}"
            )
        try:
            parsed = [_parse_field(f, spec) for f, spec in zip(fields, _FIELDS, strict=True)]
        except _FieldError as exc:
            raise ValueError(f"Invalid cron expression {expr!r}: {exc}") from None
        self.minutes, self.hours, self.days, self.months, self.weekdays = parsed
        self.day_or = not fields[2].startswith("*") and not fields[4].startswith("*")
        self._dom_all = fields[2].startswith("*") and len(self.days) == 31
        self._dow_all = fields[4].startswith("*") and len(self.weekdays) == 7
        self._check_possible()

    # -- validation ----------------------------------------------------------
    def _check_possible(self) -> None:
        """Reject expressions whose day-of-month never occurs in their months."""
        if self.day_or:
            return  # the weekday alternative occurs in every month
        if any(d <= _MAX_DAYS[m] for m in self.months for d in self.days):
            return
        months = ", ".join(calendar.month_name[m] for m in self.months)
        days = ", ".join(str(d) for d in self.days)
        raise ValueError(
            f"Invalid cron expression {self.expression!r}: it never fires, "
            f"day-of-month {days} does not occur in {months}"
        )

    # -- matching ------------------------------------------------------------
    def _day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.day_or:
            return dom or dow
        return dom and dow

    def matches(self, wall: datetime) -> bool:
        """True when ``wall`` satisfies every field.

        A naive value is a wall-clock time and is matched as is (0.1.8 did the
        same); an aware one is first converted to the expression's time zone.
        """
        if wall.tzinfo is not None and wall.utcoffset() is not None:
            wall = wall.astimezone(self.tzinfo).replace(tzinfo=None)
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and self._day_matches(wall.date())
        )

    def _first_day(self, year: int, month: int, day: int) -> int | None:
        last = calendar.monthrange(year, month)[1]
        if self._dom_all and self._dow_all:
            return day if day <= last else None
        for candidate in range(day, last + 1):
            if self._day_matches(date(year, month, candidate)):
                return candidate
        return None

    def next_wall_time(self, start: datetime) -> datetime:
        """First naive wall time >= ``start`` (minute resolution) matching the fields."""
        year, month, day, hour, minute = start.year, start.month, start.day, start.hour, start.minute
        if start.second or start.microsecond:
            probe = datetime(year, month, day, hour, minute) + _MINUTE
            year, month, day, hour, minute = probe.year, probe.month, probe.day, probe.hour, probe.minute
        limit = year + _YEAR_SPAN
        while year <= limit:
            found_month = _first_at_least(self.months, month)
            if found_month is None:
                year, month, day, hour, minute = year + 1, 1, 1, 0, 0
                continue
            if found_month != month:
                month, day, hour, minute = found_month, 1, 0, 0
            found_day = self._first_day(year, month, day)
            if found_day is None:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute = 1, 0, 0
                continue
            if found_day != day:
                day, hour, minute = found_day, 0, 0
            found_hour = _first_at_least(self.hours, hour)
            if found_hour is None:
                following = date(year, month, day) + timedelta(days=1)
                year, month, day, hour, minute = following.year, following.month, following.day, 0, 0
                continue
            if found_hour != hour:
                hour, minute = found_hour, 0
            found_minute = _first_at_least(self.minutes, minute)
            if found_minute is None:
                probe = datetime(year, month, day, hour) + timedelta(hours=1)
                year, month, day, hour, minute = probe.year, probe.month, probe.day, probe.hour, 0
                continue
            return datetime(year, month, day, hour, found_minute)
        raise ValueError(f"cron expression {self.expression!r} has no run time after {start}")

    # -- time zones ------------------------------------------------------------
    def _to_instant(self, wall: datetime) -> datetime:
        """Map a naive wall time to a UTC instant following the DST policy."""
        first = wall.replace(tzinfo=self.tzinfo, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tzinfo, fold=1).astimezone(UTC)
        if first == second:
            return first
        if first.astimezone(self.tzinfo).replace(tzinfo=None) == wall:
            return min(first, second)  # ambiguous: the first occurrence
        return self._gap_end(min(first, second), max(first, second))

    def _gap_end(self, low: datetime, high: datetime) -> datetime:
        """First instant in (low, high] that uses the post-transition offset."""
        after = high.astimezone(self.tzinfo).utcoffset()
        lo, hi = 0, int((high - low).total_seconds())
        while lo < hi:  # binary search at second resolution: < 20 steps
            mid = (lo + hi) // 2
            if (low + timedelta(seconds=mid)).astimezone(self.tzinfo).utcoffset() == after:
                hi = mid
            else:
                lo = mid + 1
        return low + timedelta(seconds=lo)

    def next_after(self, dt: datetime) -> datetime:
        """The first fire time strictly after ``dt`` (aware), as an aware UTC datetime."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("next_after() needs a timezone-aware datetime")
        local = dt.astimezone(self.tzinfo).replace(tzinfo=None, fold=0)
        wall = local.replace(second=0, microsecond=0) + _MINUTE
        for _ in range(4 * 24 * 60):  # only repeated (fall-back) wall times loop here
            wall = self.next_wall_time(wall)
            instant = self._to_instant(wall)
            if instant > dt:
                return instant
            wall += _MINUTE
        raise ValueError(f"cron expression {self.expression!r} has no run time after {dt}")

    def next_run(self, after: datetime | None = None) -> datetime:
        """The first fire time strictly after ``after``, seconds zero (0.1.8 API).

        Kept for code written against flowrra 0.1.8, which matched cron fields
        against naive local time. A naive ``after`` is therefore a wall-clock
        time and a naive wall time is returned; an aware ``after`` gives an
        aware result in ``after``'s zone (fields matched in the expression's
        zone, DST handled as in :meth:`next_after`). ``None`` means now: local
        naive time, or now in the expression's zone when one was given.
        """
        if after is None:
            if self._zone_given:
                after = datetime.now(self.tzinfo)
            else:
                after = datetime.now()
        if after.tzinfo is None or after.utcoffset() is None:
            wall = after.replace(tzinfo=None, second=0, microsecond=0) + _MINUTE
            return self.next_wall_time(wall)
        return self.next_after(after).astimezone(after.tzinfo)

    # -- identity ---------------------------------------------------------------
    @property
    def canonical(self) -> str:
        """A normal form: equal for expressions that fire at the same times."""
        def fmt(values: tuple[int, ...]) -> str:
            return ",".join(map(str, values))

        mode = "or" if self.day_or else "and"
        fields = (self.minutes, self.hours, self.days, self.months, self.weekdays)
        parts = (*map(fmt, fields), mode)
        return " ".join(parts) + f" {self.timezone}"

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        if self._zone_given:
            return f"CronExpression({self.expression!r}, tz={self.timezone!r})"
        return f"CronExpression({self.expression!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return self.canonical == other.canonical

    def __hash__(self) -> int:
        return hash(self.canonical)
