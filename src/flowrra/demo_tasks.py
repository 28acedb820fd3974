"""Example tasks used by ``flowrra demo``; one of each behaviour a new user should see.

The app is configured from the environment (``FLOWRRA_BROKER_URL`` ...) so the
demo process and its worker subprocess (``flowrra worker flowrra.demo_tasks:app``)
build the same app against the same broker.
"""

from __future__ import annotations

import asyncio
import random

from flowrra import Config, Flowrra

app = Flowrra(Config.from_env())

#: Attempts seen per token, in the process that runs the task; makes ``flaky_api``
#: fail a fixed number of times before it succeeds.
_attempts: dict[str, int] = {}


@app.task(name="fetch_page", priority=5, max_retries=2, retry_delay=0.2)
async def fetch_page(page: int) -> dict[str, int]:
    """An ordinary I/O task that succeeds."""
    await asyncio.sleep(random.uniform(0.2, 1.0))
    return {"page": page, "bytes": random.randint(2_000, 90_000)}


@app.task(name="flaky_api", priority=5, max_retries=3, retry_delay=0.3)
async def flaky_api(token: str, failures: int = 2) -> str:
    """Fails ``failures`` times, then succeeds: shows retries with backoff."""
    _attempts[token] = _attempts.get(token, 0) + 1
    await asyncio.sleep(0.1)
    if _attempts[token] <= failures:
        raise ConnectionError(f"upstream API unavailable (attempt {_attempts[token]})")
    return f"{token}: ok after {_attempts[token]} attempts"


@app.task(name="broken_report", priority=5, max_retries=1, retry_delay=0.2)
async def broken_report(report: int) -> None:
    """Always fails: ends as *failed* in the dead-letter list after its retry."""
    await asyncio.sleep(0.1)
    raise ValueError(f"report #{report}: input file is corrupt")


@app.task(name="slow_export", priority=5, max_retries=0, timeout=1.0)
async def slow_export(export: int) -> str:
    """Runs longer than its 1 s time limit, so it fails with a timeout."""
    await asyncio.sleep(30)
    return f"export {export} done"  # never reached


@app.task(name="crunch_numbers", cpu_bound=True, priority=5)
def crunch_numbers(limit: int) -> int:
    """CPU-bound (plain def): counts primes below ``limit`` in a worker process."""
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit ** 0.5) + 1):
        if sieve[n]:
            sieve[n * n::n] = bytes(len(range(n * n, limit, n)))
    return sum(sieve)


@app.task(name="urgent_alert", priority=0)
async def urgent_alert(alert: int) -> str:
    """High priority (0): submitted last, yet runs before the queued low-priority work."""
    await asyncio.sleep(0.1)
    return f"alert {alert} delivered"


@app.task(name="nightly_cleanup", priority=9)
async def nightly_cleanup(batch: int) -> int:
    """Low priority (9): runs when nothing more important is waiting."""
    await asyncio.sleep(random.uniform(0.1, 0.4))
    return batch * 10
