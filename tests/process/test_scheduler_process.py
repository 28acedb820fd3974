"""``flowrra scheduler`` in its own process submits due work that a worker process runs."""

from __future__ import annotations

import signal

import pytest

from tests.apps.procapp import count
from tests.conftest import wait_until

pytestmark = pytest.mark.slow


async def test_scheduler_process_submits_and_stops_on_sigterm(broker_url, side_dir, tmp_path,
                                                              start_worker, make_producer):
    schedules = f"sqlite:///{tmp_path / 'schedules.db'}"
    producer = make_producer(broker_url, side_dir, scheduler_url=schedules)
    scheduler = producer.create_scheduler(check_interval=0.5)
    await scheduler.schedule_interval("record", 0.5, args=("tick",), description="test")
    await scheduler.close()
    beat = start_worker(broker_url, side_dir, command="scheduler", scheduler_url=schedules)
    await beat.wait_for_output(f"scheduler started (pid {beat.pid})")
    start_worker(broker_url, side_dir, scheduler_url=schedules)
    await wait_until(lambda: count(side_dir)["tick"] >= 2, timeout=30,
                     message="two scheduled runs executed by the worker")
    beat.send(signal.SIGTERM)
    assert await beat.wait_exit(30) == 0
    assert "scheduler stopped" in beat.output()
