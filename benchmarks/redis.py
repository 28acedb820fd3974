"""End-to-end benchmark: one producer process, one worker process (100 I/O slots).

    .venv/bin/python benchmarks/redis.py                  # local Redis
    .venv/bin/python benchmarks/redis.py --backend sqlite # same code, SQLite file
    .venv/bin/python benchmarks/redis.py --url redis://host:6379/1

Figures (each printed next to its target with PASS/MISS):

* 10,000 no-op tasks: end-to-end tasks/s (first submit to last result) and the
  time to enqueue them all;
* 2,000 tasks of ``asyncio.sleep(0.05)``: wall time (the floor is 1.0 s);
* submit-to-start latency of 200 tasks sent 10 ms apart: p50 and p99, from
  ``started_at - submitted_at`` in the stored records;
* peak RSS of the producer and the worker.

Every result is checked through ``wait_for_result`` / ``get_result``. The worker
is started as ``sys.executable -c`` running :func:`benchmarks._apps.main`, so the
benchmark does not depend on the CLI. Everything runs under a fresh key prefix
(or a fresh file), deleted afterwards.
"""

from __future__ import annotations

import os
import sys

# ``python benchmarks/redis.py`` puts this directory first on sys.path, where this very
# file would shadow the ``redis`` package; use the repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import psutil  # noqa: E402

TARGETS = {"noop_rate": 5000.0, "sleep_wall": 1.3, "p99_ms": 5.0}


@dataclass
class Report:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, target: float | None = None,
            higher_is_better: bool = False) -> None:
        shown = f"{value:,.1f} {unit}" if value >= 100 else f"{value:,.3f} {unit}"
        if target is None:
            self.rows.append((name, shown, "", ""))
            return
        ok = value >= target if higher_is_better else value <= target
        sign = ">=" if higher_is_better else "<="
        self.rows.append((name, shown, f"{sign} {target:,g} {unit}", "PASS" if ok else "MISS"))

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        for name, value, target, verdict in self.rows:
            print(f"  {name:<{width}}  {value:>16}  {target:>16}  {verdict}")


class RssSampler:
    """Samples the RSS of some processes every 20 ms and keeps the peak of each."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.peaks = dict.fromkeys(processes, 0)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.02)

    def sample(self) -> None:
        for name, proc in self.processes.items():
            with contextlib.suppress(psutil.Error):
                self.peaks[name] = max(self.peaks[name], proc.memory_info().rss)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


def start_worker(url: str, profile: str | None) -> subprocess.Popen[str]:
    env = dict(os.environ, FLOWRRA_BENCH_URL=url)
    if profile:
        env["FLOWRRA_BENCH_PROFILE"] = profile
    root = os.path.dirname(_HERE)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-c", "import benchmarks._apps as m; m.main()"],
                            cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"worker failed to start (said {line!r}); see its stderr above")
    return proc


def stop_worker(proc: subprocess.Popen[str]) -> int:
    """SIGTERM the worker; return the peak RSS it reports (0 if it reported none)."""
    proc.terminate()
    out, _ = proc.communicate(timeout=60)
    for line in reversed(out.splitlines()):
        if line.startswith("peak_rss "):
            return int(line.split()[1])
    return 0


async def submit_all(app, make_call: Callable[[int], tuple], count: int,
                     concurrency: int, bulk: bool = False) -> list[str]:
    """Submit ``count`` tasks in chunks of ``concurrency``: concurrent ``submit`` calls,
    or one ``submit_many`` per chunk with ``bulk``."""
    ids: list[str] = []
    for start in range(0, count, concurrency):
        batch = [make_call(i) for i in range(start, min(count, start + concurrency))]
        if bulk:
            ids += await app.submit_many([(fn, args, {}) for fn, args in batch])
        else:
            ids += await asyncio.gather(*(app.submit(fn, *args) for fn, args in batch))
    return ids


async def wait_all(app, ids: list[str], timeout: float) -> list:
    results = await asyncio.gather(*(app.wait_for_result(i, timeout=timeout) for i in ids))
    bad = [r for r in results if not r.is_success]
    if bad:
        raise SystemExit(f"{len(bad)} task(s) did not succeed, e.g. {bad[0].to_dict}")
    return results


class CpuMeter:
    """CPU seconds used by the producer, the worker and (for Redis) the server.

    On a shared or virtualised machine wall-clock rates swing with the load of
    neighbours; CPU time per task is the figure to optimise against.
    """

    def __init__(self, worker: psutil.Process, redis_url: str | None) -> None:
        self.worker = worker
        self.redis_url = redis_url

    async def read(self) -> dict[str, float]:
        me = psutil.Process().cpu_times()
        theirs = self.worker.cpu_times()
        out = {"producer": me.user + me.system, "worker": theirs.user + theirs.system}
        if self.redis_url:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(self.redis_url.split("?")[0])
            try:
                info = await client.info("cpu")
            finally:
                await client.aclose()
            out["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return out


async def run_benchmarks(app, apps_module, report: Report, args: argparse.Namespace,
                         cpu: CpuMeter) -> None:
    noop, sleep = apps_module.noop, apps_module.sleep
    # warm-up: connections, scripts, code paths (not measured)
    await wait_all(app, await submit_all(app, lambda i: (noop, ()), 300, args.concurrency), 60)

    n = args.tasks
    if n:
        await _noop_phase(app, noop, n, report, args, cpu)
    if args.sleep_tasks:
        await _sleep_phase(app, sleep, args.sleep_tasks, report, args)
    if args.latency_tasks:
        await _latency_phase(app, noop, args.latency_tasks, report)


async def _noop_phase(app, noop, n: int, report: Report, args: argparse.Namespace,
                      cpu: CpuMeter) -> None:
    cpu_before = await cpu.read()
    start = time.perf_counter()
    ids = await submit_all(app, lambda i: (noop, ()), n, args.concurrency, args.bulk)
    enqueued = time.perf_counter() - start
    await wait_all(app, ids, 300)
    total = time.perf_counter() - start
    cpu_after = await cpu.read()
    report.add(f"{n:,} no-op tasks end to end", n / total, "tasks/s", TARGETS["noop_rate"], True)
    report.add(f"{n:,} no-op tasks: time to enqueue", enqueued, "s")
    report.add(f"{n:,} no-op tasks: total", total, "s")
    for name in cpu_after:
        used = (cpu_after[name] - cpu_before[name]) / n * 1e6
        report.add(f"  CPU per no-op task: {name}", used, "us")


async def _sleep_phase(app, sleep, m: int, report: Report, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    ids = await submit_all(app, lambda i: (sleep, (0.05,)), m, args.concurrency, args.bulk)
    await wait_all(app, ids, 300)
    wall = time.perf_counter() - start
    report.add(f"{m:,} x sleep(0.05), 100 slots (floor {m / 100 * 0.05:g} s)", wall, "s",
               TARGETS["sleep_wall"] * m / 2000)


async def _latency_phase(app, noop, count: int, report: Report) -> None:
    ids = []
    for _ in range(count):
        ids.append(await app.submit(noop))
        await asyncio.sleep(0.01)
    records = await wait_all(app, ids, 60)
    lat = sorted((r.started_at - r.submitted_at).total_seconds() * 1000 for r in records)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    report.add(f"submit->start latency p50 ({len(lat)} tasks, 10 ms apart)", p50, "ms")
    report.add("submit->start latency p99", p99, "ms", TARGETS["p99_ms"])
    for task_id in ids[:5]:  # spot check through get_result too
        record = await app.get_result(task_id)
        assert record is not None and record.is_success, record


async def main_async(args: argparse.Namespace) -> int:
    url = args.url
    cleanup: Callable[[], object] | None = None
    if args.backend == "redis":
        prefix = f"flowrra-bench-{uuid.uuid4().hex[:8]}"
        url = f"{url}{'&' if '?' in url else '?'}key_prefix={prefix}"
        cleanup = lambda: _delete_redis_prefix(args.url, prefix)  # noqa: E731
    else:
        tmp = tempfile.mkdtemp(prefix="flowrra-bench-")
        url = f"sqlite:///{tmp}/bench.db"
        cleanup = lambda: subprocess.run(["rm", "-rf", tmp], check=False)  # noqa: E731
    os.environ["FLOWRRA_BENCH_URL"] = url
    import benchmarks._apps as apps_module

    app = apps_module.app
    worker = start_worker(url, args.profile_worker)
    sampler = RssSampler({"producer": psutil.Process(), "worker": psutil.Process(worker.pid)})
    sampler.start()
    report = Report()
    worker_peak = 0
    try:
        await app.connect()
        meter = CpuMeter(psutil.Process(worker.pid), url if args.backend == "redis" else None)
        await run_benchmarks(app, apps_module, report, args, meter)
    finally:
        await sampler.stop()
        worker_peak = stop_worker(worker)
        await app.stop()
        result = cleanup()
        if asyncio.iscoroutine(result):
            await result
    import resource

    producer_peak = max(sampler.peaks["producer"],
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    report.add("peak RSS producer", producer_peak / 2**20, "MiB")
    report.add("peak RSS worker", max(worker_peak, sampler.peaks["worker"]) / 2**20, "MiB")
    print(f"flowrra end-to-end benchmark: {args.backend} ({url.split('?')[0]}), "
          f"1 producer + 1 worker process (100 I/O slots), {os.cpu_count()} CPUs")
    report.print()
    return 0 if all(r[3] != "MISS" for r in report.rows) else 1


async def _delete_redis_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i:i + 500])
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--url", default=os.environ.get("FLOWRRA_TEST_REDIS_URL",
                                                        "redis://127.0.0.1:6379/0"))
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--sleep-tasks", type=int, default=2_000)
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=500,
                        help="submissions in flight at once in the producer")
    parser.add_argument("--producer", choices=("submit", "submit_many"), default="submit",
                        help="how the producer submits each chunk (default: concurrent submit)")
    parser.add_argument("--profile-worker", metavar="FILE",
                        help="write a cProfile of the worker process to FILE")
    args = parser.parse_args()
    args.bulk = args.producer == "submit_many"
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
