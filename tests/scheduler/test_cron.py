"""Cron parsing and next-fire computation, checked against hand-computed times.

Calendar facts used below: 2024-01-01 is a Monday; 2024 is a leap year;
2024-03-01 is a Friday; 2025-01-01 is a Wednesday; 2027-02-01 is a Monday.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from flowrra.scheduler.cron import MACROS, CronExpression


def u(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# (expression, time zone, after, expected next fire time)
TABLE = [
    ("* * * * *", "UTC", u(2024, 1, 1, 0, 0), u(2024, 1, 1, 0, 1)),
    ("* * * * *", "UTC", u(2024, 1, 1, 0, 0, 30), u(2024, 1, 1, 0, 1)),
    ("* * * * *", "UTC", u(2024, 12, 31, 23, 59), u(2025, 1, 1, 0, 0)),
    ("0 * * * *", "UTC", u(2024, 1, 1, 0, 0), u(2024, 1, 1, 1, 0)),
    ("0 * * * *", "UTC", u(2024, 1, 1, 0, 59, 59), u(2024, 1, 1, 1, 0)),
    ("*/15 * * * *", "UTC", u(2024, 1, 1, 0, 14), u(2024, 1, 1, 0, 15)),
    ("*/15 * * * *", "UTC", u(2024, 1, 1, 0, 45), u(2024, 1, 1, 1, 0)),
    ("5/15 * * * *", "UTC", u(2024, 1, 1, 0, 21), u(2024, 1, 1, 0, 35)),
    ("10-20/5 * * * *", "UTC", u(2024, 1, 1, 0, 16), u(2024, 1, 1, 0, 20)),
    ("10-20/5 * * * *", "UTC", u(2024, 1, 1, 0, 20), u(2024, 1, 1, 1, 10)),
    ("0,30 9-17 * * *", "UTC", u(2024, 1, 1, 17, 30), u(2024, 1, 2, 9, 0)),
    ("0 9 * * mon-fri", "UTC", u(2024, 1, 5, 9, 0), u(2024, 1, 8, 9, 0)),
    ("0 9 * * 1-5", "UTC", u(2024, 1, 6, 12, 0), u(2024, 1, 8, 9, 0)),
    ("0 0 * * 0", "UTC", u(2024, 1, 1), u(2024, 1, 7)),
    ("0 0 * * 7", "UTC", u(2024, 1, 1), u(2024, 1, 7)),
    ("0 0 * * sun", "UTC", u(2024, 1, 1), u(2024, 1, 7)),
    ("0 0 * * SAT,SUN", "UTC", u(2024, 1, 1), u(2024, 1, 6)),
    ("0 0 * * 5-7", "UTC", u(2024, 1, 1), u(2024, 1, 5)),
    ("0 12 * * 0-7", "UTC", u(2024, 1, 1, 12), u(2024, 1, 2, 12)),
    ("0 0 1 * *", "UTC", u(2024, 1, 15), u(2024, 2, 1)),
    ("0 0 31 * *", "UTC", u(2024, 1, 31), u(2024, 3, 31)),
    ("0 0 31 * *", "UTC", u(2024, 3, 31), u(2024, 5, 31)),
    ("0 0 30 * *", "UTC", u(2024, 1, 30), u(2024, 3, 30)),
    ("0 0 30 1,2 *", "UTC", u(2024, 1, 30), u(2025, 1, 30)),
    ("0 0 29 2 *", "UTC", u(2024, 3, 1), u(2028, 2, 29)),
    ("0 0 29 feb *", "UTC", u(2023, 1, 1), u(2024, 2, 29)),
    ("0 0 29 2 *", "UTC", u(2096, 3, 1), u(2104, 2, 29)),  # 2100 is not a leap year
    ("0 0 */10 * *", "UTC", u(2024, 2, 21), u(2024, 3, 1)),
    ("0 0 * jan,jul *", "UTC", u(2024, 1, 31), u(2024, 7, 1)),
    ("0 0 1 */3 *", "UTC", u(2024, 1, 1), u(2024, 4, 1)),
    ("0 0 1 oct-dec *", "UTC", u(2024, 12, 1), u(2025, 10, 1)),
    ("59 23 31 12 *", "UTC", u(2024, 1, 1), u(2024, 12, 31, 23, 59)),
    ("59 23 31 12 *", "UTC", u(2024, 12, 31, 23, 59), u(2025, 12, 31, 23, 59)),
    ("1-3 * * * *", "UTC", u(2024, 1, 1, 0, 3), u(2024, 1, 1, 1, 1)),
    ("0 0-23/8 * * *", "UTC", u(2024, 1, 1, 16), u(2024, 1, 2, 0)),
    ("*/20 */6 * * *", "UTC", u(2024, 1, 1, 6, 40), u(2024, 1, 1, 12, 0)),
    ("*/7 * * * *", "UTC", u(2024, 1, 1, 0, 56), u(2024, 1, 1, 1, 0)),
    ("0 22 * * 1-5", "UTC", u(2024, 1, 5, 22), u(2024, 1, 8, 22)),
    ("15 14 1 * *", "UTC", u(2024, 1, 1, 14, 15), u(2024, 2, 1, 14, 15)),
    # Vixie OR: both day fields restricted -> either matches
    ("0 12 13 * 5", "UTC", u(2024, 1, 1), u(2024, 1, 5, 12)),
    ("0 12 13 * 5", "UTC", u(2024, 1, 5, 12), u(2024, 1, 12, 12)),
    ("0 12 13 * 5", "UTC", u(2024, 1, 12, 12), u(2024, 1, 13, 12)),
    ("0 0 1-7 * mon", "UTC", u(2024, 1, 8), u(2024, 1, 15)),
    ("30 4 1,15 * 5", "UTC", u(2024, 1, 2), u(2024, 1, 5, 4, 30)),
    ("0 0 15 * 0", "UTC", u(2024, 1, 1), u(2024, 1, 7)),
    ("0 0 15 * 0", "UTC", u(2024, 1, 14), u(2024, 1, 15)),
    ("0 0 1 1 1", "UTC", u(2024, 1, 29), u(2025, 1, 1)),
    ("0 0 29 2 1", "UTC", u(2024, 3, 1), u(2025, 2, 3)),
    # a day field starting with '*' -> both must match (AND)
    ("0 12 */13 * 5", "UTC", u(2024, 1, 1), u(2024, 3, 1, 12)),
    ("0 0 */31 2 1", "UTC", u(2024, 3, 1), u(2027, 2, 1)),
    ("0 0 * * 5", "UTC", u(2024, 1, 1), u(2024, 1, 5)),
    # macros
    ("0 0 1 1 *", "UTC", u(2024, 1, 1), u(2025, 1, 1)),
    ("@yearly", "UTC", u(2024, 1, 1), u(2025, 1, 1)),
    ("@annually", "UTC", u(2024, 6, 15), u(2025, 1, 1)),
    ("@monthly", "UTC", u(2024, 1, 31, 23, 59), u(2024, 2, 1)),
    ("@weekly", "UTC", u(2024, 1, 1), u(2024, 1, 7)),
    ("@daily", "UTC", u(2024, 1, 1, 12), u(2024, 1, 2)),
    ("@DAILY", "UTC", u(2024, 1, 1, 12), u(2024, 1, 2)),
    ("@midnight", "UTC", u(2024, 2, 28), u(2024, 2, 29)),
    ("@hourly", "UTC", u(2024, 1, 1, 23, 30), u(2024, 1, 2, 0)),
    # time zones without DST changes on these dates
    ("0 9 * * *", "Asia/Tokyo", u(2024, 1, 1, 0, 0), u(2024, 1, 2, 0, 0)),
    ("0 9 * * *", "America/New_York", u(2024, 1, 1), u(2024, 1, 1, 14)),
    ("0 9 * * *", "America/New_York", u(2024, 7, 1), u(2024, 7, 1, 13)),
    ("30 5 * * *", "Asia/Kolkata", u(2024, 1, 1), u(2024, 1, 2)),
    ("@daily", "Europe/London", u(2024, 3, 30), u(2024, 3, 31)),
    ("@daily", "Europe/London", u(2024, 3, 31), u(2024, 3, 31, 23)),
]


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), TABLE,
                         ids=[f"{e}|{z}|{a:%Y%m%dT%H%M%S}" for e, z, a, _ in TABLE])
def test_next_after_table(expr, tz, after, expected):
    assert CronExpression(expr, tz).next_after(after) == expected


def test_table_is_large():
    assert len(TABLE) >= 50


def test_next_after_returns_aware_utc_and_accepts_other_zones():
    ny = ZoneInfo("America/New_York")
    result = CronExpression("0 12 * * *").next_after(datetime(2024, 1, 1, 8, 0, tzinfo=ny))
    assert result == u(2024, 1, 2, 12)  # 08:00 EST is 13:00Z, after noon UTC
    assert result.tzinfo is UTC


def test_naive_datetime_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        CronExpression("* * * * *").next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize("macro", sorted(MACROS))
def test_every_macro_equals_its_expansion(macro):
    assert CronExpression(macro) == CronExpression(MACROS[macro])


def test_equivalent_spellings_share_a_canonical_form():
    assert CronExpression("0 0 * * 7") == CronExpression("0 0 * * sun")
    assert CronExpression("0 0 * * 0") == CronExpression("@weekly")
    assert CronExpression("*/30 * * * *") == CronExpression("0,30 * * * *")
    assert CronExpression("0 0 * * *", "UTC") != CronExpression("0 0 * * *", "Europe/Paris")


# -- daylight saving time ----------------------------------------------------------------
NY = "America/New_York"  # 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST
LONDON = "Europe/London"  # 2024-03-31 01:00 GMT -> 02:00 BST; 2024-10-27 02:00 BST -> 01:00 GMT


def fire_times(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    cron, times = CronExpression(expr, tz), []
    for _ in range(count):
        after = cron.next_after(after)
        times.append(after)
    return times


def test_new_york_spring_forward_skipped_time_fires_after_the_gap():
    # 02:30 does not exist on 2024-03-10: it fires at 03:00 EDT (07:00Z), the next day as usual
    assert fire_times("30 2 * * *", NY, u(2024, 3, 10, 5), 2) == [
        u(2024, 3, 10, 7, 0), u(2024, 3, 11, 6, 30)]


def test_new_york_spring_forward_hourly_and_half_hourly():
    assert fire_times("0 * * * *", NY, u(2024, 3, 10, 5), 3) == [
        u(2024, 3, 10, 6), u(2024, 3, 10, 7), u(2024, 3, 10, 8)]
    # 02:00 and 02:30 fall in the gap: one run at 03:00 EDT, then 03:30
    assert fire_times("*/30 * * * *", NY, u(2024, 3, 10, 6, 30), 2) == [
        u(2024, 3, 10, 7, 0), u(2024, 3, 10, 7, 30)]


def test_new_york_fall_back_fires_once_at_first_occurrence():
    assert fire_times("30 1 * * *", NY, u(2024, 11, 3, 4), 2) == [
        u(2024, 11, 3, 5, 30), u(2024, 11, 4, 6, 30)]
    # hourly: 01:00 EDT (05:00Z) fires, 01:00 EST (06:00Z) does not, then 02:00 EST
    assert fire_times("0 * * * *", NY, u(2024, 11, 3, 4, 30), 2) == [
        u(2024, 11, 3, 5), u(2024, 11, 3, 7)]
    assert fire_times("*/30 * * * *", NY, u(2024, 11, 3, 5), 2) == [
        u(2024, 11, 3, 5, 30), u(2024, 11, 3, 7)]


def test_new_york_fall_back_from_inside_the_repeated_hour():
    # 01:10 EST (second pass): 01:45 already fired during the first pass
    assert CronExpression("45 1 * * *", NY).next_after(u(2024, 11, 3, 6, 10)) == u(2024, 11, 4, 6, 45)
    assert CronExpression("* * * * *", NY).next_after(u(2024, 11, 3, 6, 10)) == u(2024, 11, 3, 7)


def test_london_spring_forward():
    assert fire_times("30 1 * * *", LONDON, u(2024, 3, 31), 2) == [
        u(2024, 3, 31, 1, 0), u(2024, 4, 1, 0, 30)]
    assert CronExpression("0 2 * * *", LONDON).next_after(u(2024, 3, 31)) == u(2024, 3, 31, 1)


def test_london_fall_back():
    assert fire_times("30 1 * * *", LONDON, u(2024, 10, 27), 2) == [
        u(2024, 10, 27, 0, 30), u(2024, 10, 28, 1, 30)]
    assert CronExpression("0 1 * * *", LONDON).next_after(u(2024, 10, 26, 23)) == u(2024, 10, 27)


# -- invalid expressions -------------------------------------------------------------------
INVALID = [
    ("", "expected 5 fields (minute hour day-of-month month day-of-week), got 0"),
    ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("* * * * * *", "got 6"),
    ("60 * * * *", "minute: value 60 out of range 0-59"),
    ("* 24 * * *", "hour: value 24 out of range 0-23"),
    ("* * 0 * *", "day-of-month: value 0 out of range 1-31"),
    ("* * 32 * *", "day-of-month: value 32 out of range 1-31"),
    ("* * * 13 *", "month: value 13 out of range 1-12"),
    ("* * * 0 *", "month: value 0 out of range 1-12"),
    ("* * * * 8", "day-of-week: value 8 out of range 0-7"),
    ("*/0 * * * *", "minute: step '0' must be a positive integer"),
    ("*/x * * * *", "minute: step 'x' must be a positive integer"),
    ("5-1 * * * *", "minute: range '5-1' starts after it ends"),
    ("* * * * mon-sun", "day-of-week: range 'mon-sun' starts after it ends"),
    ("* * * foo *", "month: unknown name 'foo'"),
    ("* * * * funday", "day-of-week: unknown name 'funday'"),
    ("* jan * * *", "hour: 'jan' is not a number"),
    ("1,,2 * * * *", "minute: empty list item in '1,,2'"),
    ("a * * * *", "minute: 'a' is not a number"),
    ("-5 * * * *", "minute: empty value"),
    ("1-2-3 * * * *", "minute: '2-3' is not a number"),
    ("@reboot", "unknown macro '@reboot'"),
    ("@every 5m", "unknown macro '@every 5m'"),
    ("0 0 30 2 *", "it never fires, day-of-month 30 does not occur in February"),
    ("0 0 31 4 *", "it never fires, day-of-month 31 does not occur in April"),
    ("0 0 31 2,4,6,9,11 *", "day-of-month 31 does not occur in February, April, June"),
    ("0 0 30,31 feb *", "day-of-month 30, 31 does not occur in February"),
]


@pytest.mark.parametrize(("expr", "message"), INVALID)
def test_invalid_expressions_have_clear_messages(expr, message):
    with pytest.raises(ValueError) as info:
        CronExpression(expr)
    text = str(info.value)
    assert message in text
    assert text.startswith(f"Invalid cron expression {expr!r}")


def test_stepped_day_of_month_that_includes_the_first_is_possible():
    assert CronExpression("0 0 */30 2 *").next_after(u(2024, 1, 1)) == u(2024, 2, 1)


def test_weekday_alternative_makes_an_impossible_date_possible():
    # OR semantics: "30 Feb, or any Monday in February"
    assert CronExpression("0 0 30 2 mon").next_after(u(2024, 1, 1)) == u(2024, 2, 5)


def test_non_string_and_bad_zone():
    with pytest.raises(ValueError, match="must be a string"):
        CronExpression(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CronExpression("* * * * *", "Mars/Olympus")


def test_errors_and_rare_dates_are_fast():
    start = time.perf_counter()
    for expr, _ in INVALID:
        with pytest.raises(ValueError):
            CronExpression(expr)
    rare = [("0 0 29 2 *", u(2096, 3, 1)), ("0 0 */31 2 1", u(2024, 3, 1)),
            ("59 23 31 12 *", u(2024, 1, 1)), ("0 0 29 2 mon", u(2024, 3, 1))]
    for expr, after in rare:
        for _ in range(20):
            CronExpression(expr).next_after(after)
    assert time.perf_counter() - start < 0.5


def test_matches_wall_time():
    cron = CronExpression("30 4 1,15 * 5")
    assert cron.matches(datetime(2024, 1, 5, 4, 30))  # a Friday
    assert cron.matches(datetime(2024, 1, 15, 4, 30))
    assert not cron.matches(datetime(2024, 1, 16, 4, 30))
