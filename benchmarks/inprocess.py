"""In-process throughput: submit and await N no-op tasks on the embedded default.

Baseline, measured in the same run: ``asyncio.gather`` over the same number of
no-op coroutines. Rounds of ours and of the baseline are interleaved and the best
round of each is compared, so machine noise affects both sides alike.
Also reports resident memory over 200,000 tasks to show it stays flat once the
in-memory result store reaches its size cap (100,000 records by default).

    python benchmarks/inprocess.py [--tasks 10000] [--rounds 5] [--memory-tasks 200000]
                                   [--subscriber]

``--subscriber`` keeps one no-op event subscriber on the bus (an open dashboard),
so every state change also goes through event delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import time

from flowrra import Flowrra
from flowrra.events import event_bus

TARGET_RATIO = 1.5

app = Flowrra()


@app.task()
async def noop() -> None:
    return None


async def plain_noop() -> None:
    return None


async def ignore_event(event: dict) -> None:
    return None


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ours(n: int) -> float:
    start = time.perf_counter()
    ids = [await app.submit(noop) for _ in range(n)]
    for task_id in ids:
        result = await app.wait_for_result(task_id)
        assert result.is_success, result
    return time.perf_counter() - start


async def baseline(n: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(plain_noop() for _ in range(n)))
    return time.perf_counter() - start


async def memory_profile(total: int, batch: int = 10_000) -> list[tuple[int, float]]:
    points = []
    done = 0
    while done < total:
        await ours(batch)
        done += batch
        if done % (total // 4) == 0:
            gc.collect()
            points.append((done, rss_mb()))
    return points


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-tasks", type=int, default=200_000)
    parser.add_argument("--subscriber", action="store_true",
                        help="keep a no-op event subscriber on the bus (as an open dashboard does)")
    args = parser.parse_args()
    if args.subscriber:
        event_bus.subscribe(ignore_event)

    async with app:
        await ours(1000)  # warm-up
        best_ours = best_base = float("inf")
        for _ in range(args.rounds):
            best_ours = min(best_ours, await ours(args.tasks))
            best_base = min(best_base, await baseline(args.tasks))
        ours_rate, base_rate = args.tasks / best_ours, args.tasks / best_base
        ratio = ours_rate / base_rate
        print(f"flowrra submit+await : {ours_rate:>10,.0f} tasks/s  (best of {args.rounds})")
        print(f"asyncio.gather       : {base_rate:>10,.0f} coroutines/s")
        print(f"peak RSS so far      : {peak_rss_mb():.1f} MiB")
        points = await memory_profile(args.memory_tasks)
        for count, mb in points:
            print(f"RSS after {count:>7,} more tasks: {mb:.1f} MiB")
        growth = points[-1][1] - points[len(points) // 2 - 1][1] if len(points) > 1 else 0.0
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(f"RESULT in-process: {ours_rate:,.0f}/s vs gather {base_rate:,.0f}/s = {ratio:.2f}x "
          f"(target >= {TARGET_RATIO}x) {verdict}; RSS growth over the second half of "
          f"{args.memory_tasks:,} tasks: {growth:+.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
