"""Quick SQLite end-to-end figure: one producer process, one worker process, one file.

    .venv/bin/python benchmarks/sqlite_quick.py [--tasks 2000] [--concurrency 100]
        [--mode gather|submit_many|one-by-one] [--synchronous normal|full]
        [--sleep 0] [--latency 0]

The producer submits no-op tasks (``--mode gather``: 100 concurrent ``submit``
calls at a time; ``submit_many``: chunks of 500; ``one-by-one``: sequential
``submit``), the worker runs them, and the producer checks every result through
the result API. ``--latency N`` instead sends N tasks 10 ms apart
and reports submit-to-start latency (p50/p99) from the stored records.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

from flowrra import Flowrra


def make_app(url: str) -> Flowrra:
    app = Flowrra.from_urls(broker=url)

    @app.task(name="noop")
    async def noop(delay: float = 0.0) -> int:
        if delay:
            await asyncio.sleep(delay)
        return 1

    return app


async def worker_main(url: str, concurrency: int) -> None:
    app = make_app(url)
    await app.start(io_workers=concurrency, cpu_workers=1)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(15, stop.set)
    await stop.wait()
    await app.stop()


async def wait_for_worker(app: Flowrra) -> None:
    deadline = time.monotonic() + 30
    while not await app.broker.list_workers():
        if time.monotonic() > deadline:
            raise SystemExit("the worker process did not start within 30s")
        await asyncio.sleep(0.05)


async def throughput(app: Flowrra, args: argparse.Namespace) -> None:
    kwargs = {"delay": args.sleep} if args.sleep else {}
    warm = await asyncio.gather(*(app.submit("noop") for _ in range(200)))  # not measured
    await asyncio.gather(*(app.wait_for_result(t, timeout=60) for t in warm))
    start = time.perf_counter()
    ids: list[str] = []
    if args.mode == "one-by-one":
        ids = [await app.submit("noop", **kwargs) for _ in range(args.tasks)]
    elif args.mode == "submit_many":
        for i in range(0, args.tasks, 500):
            ids += await app.submit_many([("noop", (), kwargs)] * min(500, args.tasks - i))
    else:
        for i in range(0, args.tasks, 100):
            count = min(100, args.tasks - i)
            ids += await asyncio.gather(*(app.submit("noop", **kwargs) for _ in range(count)))
    enqueued = time.perf_counter() - start
    results = await asyncio.gather(*(app.wait_for_result(t, timeout=120) for t in ids))
    total = time.perf_counter() - start
    ok = sum(r.is_success for r in results)
    assert ok == args.tasks, f"only {ok}/{args.tasks} succeeded"
    print(f"{args.tasks} tasks ({args.mode}, sleep {args.sleep}s, concurrency {args.concurrency}, "
          f"synchronous={args.synchronous}): enqueue {enqueued:.3f}s, end to end {total:.3f}s "
          f"= {args.tasks / total:,.0f} tasks/s; {ok} successes verified")


async def latency(app: Flowrra, count: int) -> None:
    ids = []
    for _ in range(count):
        ids.append(await app.submit("noop"))
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*(app.wait_for_result(t, timeout=60) for t in ids))
    waits = sorted((r.started_at - r.submitted_at).total_seconds() * 1000 for r in results)
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    print(f"latency submit->start over {count} tasks 10 ms apart: p50 {statistics.median(waits):.2f} ms,"
          f" p99 {p99:.2f} ms, max {waits[-1]:.2f} ms")


async def producer_main(args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(prefix="flowrra-bench-")
    url = f"sqlite:///{folder}/bench.db?synchronous={args.synchronous}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    worker = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--worker", url, "--concurrency", str(args.concurrency), env=env)
    app = make_app(url)
    try:
        await app.connect()
        await wait_for_worker(app)
        if args.latency:
            await latency(app, args.latency)
        else:
            await throughput(app, args)
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
        await app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--synchronous", default="normal", choices=("off", "normal", "full"))
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--latency", type=int, default=0)
    parser.add_argument("--mode", default="gather", choices=("gather", "submit_many", "one-by-one"))
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main(args.worker, args.concurrency))
    else:
        asyncio.run(producer_main(args))


if __name__ == "__main__":
    main()
