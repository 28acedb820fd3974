"""The example's Flowrra app and tasks.

This module must stay free of Django imports: ``flowrra worker
examples.django_project.project.tasks:flowrra`` imports it in worker processes
that never configure Django.

The app is configured from the environment (``Config.from_env()``): with no
``FLOWRRA_*`` variables everything runs inside the web process (embedded
broker), and with ``FLOWRRA_BROKER_URL=redis://127.0.0.1:6379/0`` tasks go
through Redis to separate worker processes, whose state changes the web process
relays to every open dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import random

from flowrra import Config, Flowrra

logger = logging.getLogger(__name__)

flowrra = Flowrra(Config.from_env())


@flowrra.task(name="demo.sleep_then_echo")
async def sleep_then_echo(message: str = "hello", seconds: float = 1.0) -> str:
    """A task that is visibly *running* for a moment before it succeeds."""
    await asyncio.sleep(seconds)
    return message


@flowrra.task(name="demo.flaky", max_retries=2, retry_delay=0.5)
async def flaky(failure_rate: float = 0.5) -> str:
    """Fails now and then, so the dashboard shows retries and failures too."""
    await asyncio.sleep(0.2)
    if random.random() < failure_rate:
        raise RuntimeError("simulated failure (this task fails on purpose now and then)")
    return "made it"


_start_lock: asyncio.Lock | None = None


async def ensure_started() -> None:
    """Make sure something will run the submitted tasks.

    With the embedded broker there is no other process, so the web process runs
    the tasks itself, started on the first request (daphne has no start-up
    hook). With a shared broker (Redis) the workers are separate processes
    and the web process only submits and watches.
    """
    global _start_lock
    if flowrra.broker.shared or flowrra.is_running:
        return
    if _start_lock is None:
        _start_lock = asyncio.Lock()
    async with _start_lock:
        if not flowrra.is_running:
            logger.info("embedded broker: running tasks inside the web process")
            await flowrra.start()
