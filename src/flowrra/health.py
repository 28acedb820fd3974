"""The health report behind ``FlowrraManager.health_check()`` and ``GET api/health``.

One report carries two views of the same verdict, so monitoring built for either
keeps working:

* ``status`` (``healthy`` | ``degraded`` | ``unhealthy``) with the raw ``checks``
  (broker and backend probes, live workers, scheduler state);
* ``healthy`` (bool) with ``components`` (``app``, ``io_executor``,
  ``cpu_executor``, ``scheduler``), each ``{"healthy", "message"}`` or ``None``
  when that part is not present in this process: the shape flowrra 0.1.8 returned.

``healthy`` is always ``status == "healthy"``, and every component marked
unhealthy makes the status at least ``degraded``: a dashboard and a 0.1.8-era
probe can never disagree. The rules are documented in ``docs/ui.md`` ("Health").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowrra.task import utcnow

if TYPE_CHECKING:
    from flowrra.app import Flowrra
    from flowrra.runners import BaseExecutor

__all__ = ["executor_summary", "health_report"]

Component = dict[str, Any] | None


def executor_summary(app: Flowrra) -> dict[str, dict[str, Any] | None]:
    """``{"io": {running, workers} | None, "cpu": ...}`` for this process's worker.

    Both are None when this process runs no worker (a producer-only web process,
    or an app that is not started): the executors live elsewhere or nowhere.
    """
    worker = app.worker
    if worker is None:
        return {"io": None, "cpu": None}
    return {"io": _executor_state(worker.io), "cpu": _executor_state(worker.cpu)}


def _executor_state(executor: BaseExecutor) -> dict[str, Any]:
    return {"running": executor.is_running, "workers": executor.concurrency}


async def health_report(app: Flowrra) -> dict[str, Any]:
    """Probe the stores, read the live workers and grade the app (see module docstring)."""
    checks: dict[str, dict[str, Any]] = {}
    checks["broker"], checks["backend"] = await asyncio.gather(
        _probe(lambda: _probe_broker(app)), _probe(lambda: _probe_backend(app)))
    workers: list[dict[str, Any]] = []
    if checks["broker"]["ok"]:
        try:
            workers = await app.broker.list_workers()
        except Exception as exc:
            checks["broker"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    checks["workers"] = {"ok": bool(workers), "count": len(workers)}
    sched = app.scheduler
    checks["scheduler"] = {"configured": sched is not None,
                           "running": bool(sched is not None and sched.is_running),
                           "expected_here": _scheduler_expected(app)}
    components = {"app": _app_component(app, checks),
                  "io_executor": _executor_component(app, "io"),
                  "cpu_executor": _executor_component(app, "cpu"),
                  "scheduler": _scheduler_component(app)}
    status = _status(app, checks)
    if status == "healthy" and any(c is not None and not c["healthy"] for c in components.values()):
        status = "degraded"
    return {"status": status, "healthy": status == "healthy", "checks": checks,
            "components": components, "timestamp": utcnow().isoformat()}


def _status(app: Flowrra, checks: dict[str, dict[str, Any]]) -> str:
    """Unhealthy: a store is down, or an in-process app nobody runs. Degraded: no live worker."""
    if not (checks["broker"]["ok"] and checks["backend"]["ok"]):
        return "unhealthy"
    if not app.broker.shared and not app.is_running:
        return "unhealthy"
    if not checks["workers"]["ok"]:
        return "degraded"
    return "healthy"


def _scheduler_expected(app: Flowrra) -> bool:
    """The config asks for the scheduler in this process (``app.config.scheduler.enabled``)."""
    cfg = app.config.scheduler
    return bool(cfg is not None and cfg.enabled)


def _app_component(app: Flowrra, checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The app as a whole: stores reachable, and someone (here or elsewhere) runs its tasks."""
    state = "App is running" if app.is_running else "App is not running"
    down = [f"{name} is unreachable ({checks[name].get('error')})"
            for name in ("broker", "backend") if not checks[name]["ok"]]
    if down:
        return {"healthy": False, "message": f"{state}, but its {'; its '.join(down)}"}
    workers = checks["workers"]["count"]
    if app.is_running:
        if workers:
            return {"healthy": True, "message": state}
        return {"healthy": False, "message": f"{state}, but no live worker is registered "
                                              "with its broker"}
    if not app.broker.shared:
        return {"healthy": False, "message": state}
    if workers:
        return {"healthy": True, "message": f"{state} in this process; {workers} live "
                                             "worker(s) run its tasks"}
    return {"healthy": False, "message": f"{state} and no live worker is connected to its broker"}


def _executor_component(app: Flowrra, kind: str) -> Component:
    """This process's IO or CPU executor; None when it is not expected here.

    Expected = tasks of that kind are registered (an executor nobody needs is not
    a component, as in 0.1.8) and either this process runs a worker, or the broker
    is the in-process one (nobody else can take the tasks, so it is missed here).
    """
    wants_cpu = kind == "cpu"
    if not any(d.cpu_bound == wants_cpu for d in app.registry.definitions()):
        return None
    label = "IO executor" if kind == "io" else "CPU executor"
    worker = app.worker
    if worker is not None:
        running = (worker.cpu if wants_cpu else worker.io).is_running
        return {"healthy": running, "message": f"{label} is {'' if running else 'not '}running"}
    if not app.broker.shared:
        return {"healthy": False, "message": f"{label} is not running"}
    return None


def _scheduler_component(app: Flowrra) -> Component:
    """None without a scheduler; a stopped one only counts when the config wants it here."""
    sched = app.scheduler
    if sched is None:
        return None
    if sched.is_running:
        return {"healthy": True, "message": "Scheduler is running"}
    if _scheduler_expected(app):
        return {"healthy": False, "message": "Scheduler is not running"}
    return {"healthy": True, "message": "Scheduler is not running in this process "
                                        "(app.config.scheduler.enabled is off)"}


async def _probe_broker(app: Flowrra) -> Any:
    await app.broker.connect()
    return await app.broker.stats()


async def _probe_backend(app: Flowrra) -> Any:
    await app.backend.connect()
    return await app.backend.count_by_status()


async def _probe(fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await fn()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
