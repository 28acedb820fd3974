"""Schedules that could never run are refused when created (issue 10, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowrra import Flowrra


@pytest.mark.parametrize(("option", "value"), [
    ("retry_delay", float("nan")), ("retry_delay", float("inf")), ("retry_delay", -1),
    ("retry_delay", 10**400), ("max_retries", -5), ("max_retries", 10**6),
    ("max_retries", float("nan")), ("priority", 10**40), ("priority", "high"),
])
async def test_unrunnable_options_are_refused(tmp_path: Path, option: str, value: object) -> None:
    app = Flowrra.from_urls()

    @app.task()
    async def report() -> None: ...

    scheduler = app.create_scheduler(backend=f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(ValueError, match=option):
            await scheduler.schedule_cron("report", "0 9 * * *", **{option: value})
        assert await scheduler.list_scheduled_tasks() == []
    finally:
        await scheduler.stop()


@pytest.mark.parametrize("interval", [1e308, 10**400, 400 * 86400])
async def test_absurd_intervals_are_refused(tmp_path: Path, interval: object) -> None:
    app = Flowrra.from_urls()

    @app.task()
    async def poll() -> None: ...

    scheduler = app.create_scheduler(backend=f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(ValueError, match="interval"):
            await scheduler.schedule_interval("poll", interval)
    finally:
        await scheduler.stop()
