"""One scheduler process for the exactly-once tests (run as a script, not collected).

Usage: python sched_proc.py STORE_URL WORKDIR BROKER_URL BACKEND_URL CLAIM_TIMEOUT

Runs a Flowrra app (worker included) and a Scheduler on the shared store until
SIGTERM. Every task id the scheduler submits is appended to
WORKDIR/subs-<pid>.txt; every execution of the task appends a line to
WORKDIR/runs.txt.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from flowrra import Flowrra
from flowrra.scheduler import Scheduler


def append_line(path: str, text: str) -> None:
    """Append one line (a single small O_APPEND write, atomic between processes)."""
    with open(path, "a") as out:
        out.write(f"{text}\n")


async def main(store_url: str, workdir: str, broker_url: str, backend_url: str,
               claim_timeout: str) -> None:
    app = Flowrra.from_urls(broker=broker_url, backend=backend_url)
    runs_path = os.path.join(workdir, "runs.txt")

    @app.task(name="eo.tick")
    async def tick(label: str) -> str:
        append_line(runs_path, str(os.getpid()))
        return label

    subs_path = os.path.join(workdir, f"subs-{os.getpid()}.txt")
    submit = app.apply_async

    async def recording_submit(*args, **kwargs):
        task_id = await submit(*args, **kwargs)
        append_line(subs_path, task_id)
        return task_id

    app.apply_async = recording_submit  # type: ignore[method-assign]
    scheduler = Scheduler(app, store_url, check_interval=5.0, claim_timeout=float(claim_timeout))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await app.start()
    await scheduler.start()
    print("ready", flush=True)
    await stop.wait()
    await scheduler.stop()
    await app.stop(timeout=10)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
