"""The app the benchmark worker process runs (module level, so the worker imports it by name).

The broker URL comes from ``FLOWRRA_BENCH_URL`` so the same module serves the
Redis and the SQLite runs. ``serve()`` runs a worker until SIGTERM/SIGINT, then
prints its peak RSS (bytes) as the last line of stdout for the driver to read.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal

from flowrra import BrokerConfig, Config, ExecutorConfig, Flowrra

URL = os.environ.get("FLOWRRA_BENCH_URL", "redis://127.0.0.1:6379/0?key_prefix=flowrra-bench")

app = Flowrra(Config(broker=BrokerConfig(URL), executor=ExecutorConfig(io_workers=100, cpu_workers=1)))


@app.task(name="bench.noop", max_retries=0)
async def noop() -> None:
    return None


@app.task(name="bench.sleep", max_retries=0)
async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


async def serve(io_workers: int = 100) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start(io_workers=io_workers, cpu_workers=1)
    print("ready", flush=True)
    await stop.wait()
    await app.stop(timeout=10)
    print(f"peak_rss {peak_rss()}", flush=True)


def main() -> None:
    """Entry point for ``python -c 'import benchmarks._apps as m; m.main()'``."""
    if os.environ.get("FLOWRRA_BENCH_PROFILE"):
        import cProfile
        import time

        profiler = cProfile.Profile(time.process_time)  # CPU time: robust on a busy machine
        profiler.runcall(asyncio.run, serve())
        profiler.dump_stats(os.environ["FLOWRRA_BENCH_PROFILE"])
    else:
        asyncio.run(serve())
