"""The :class:`Flowrra` application: task registration, submission, results, lifecycle."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowrra.backends import ResultBackend, get_backend
from flowrra.brokers import Broker, DeadLetter, get_broker
from flowrra.config import BackendConfig, BrokerConfig, Config
from flowrra.events import event_bus, task_event
from flowrra.exceptions import ExecutorNotRunningError
from flowrra.registry import TaskRegistry
from flowrra.serialization import ensure_serializable
from flowrra.task import Task, TaskResult, TaskStatus, utcnow
from flowrra.transports import TransportRelay
from flowrra.worker import Worker

if TYPE_CHECKING:
    from flowrra.scheduler import Scheduler

logger = logging.getLogger(__name__)

TaskRef = str | Callable[..., Any]


class _IdSource:
    """Task ids: 64 random bits per process + a 64-bit counter, as 32 hex digits.

    Unique across processes and machines (the prefix is drawn again after a fork)
    at a fraction of the cost of ``uuid4()`` on the submit hot path. The counter
    starts at or above 2**63, so its hex form is always 16 digits without padding.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count((1 << 63) | int.from_bytes(os.urandom(3), "big"))


_ids = _IdSource()


def _new_id() -> str:
    return _ids.prefix + hex(next(_ids.counter))[2:]


class Flowrra:
    """A task queue application.

    With no configuration everything lives in this process (in-memory broker and
    results) and ``await app.start()`` runs tasks here. With a shared broker
    (``redis://``, ``sqlite:///``) the same app object serves producers (``submit``,
    ``wait_for_result``; no ``start`` needed) and workers (``flowrra worker``).
    """

    def __init__(self, config: Config | None = None, *, broker: Broker | str | None = None,
                 backend: ResultBackend | str | None = None) -> None:
        self.config = config if config is not None else Config()
        self.registry = TaskRegistry()
        self.instance_id = uuid.uuid4().hex[:12]
        self.broker: Broker = _make_broker(broker, self.config.broker)
        self.backend: ResultBackend = _make_backend(backend, self.config.backend, self.broker)
        self.transport = self.broker.event_transport()
        #: Broker, results and events all live in this process: the hot path calls
        #: the stores' ``*_nowait`` methods instead of awaiting a coroutine per step.
        self.local = self.broker.local and self.backend.local and not self.transport.remote
        self._relay = TransportRelay(self.transport, event_bus, self.instance_id,
                                     on_control=self._on_control)
        event_bus.add_relay(self._relay)
        self._worker: Worker | None = None
        self._scheduler: Scheduler | None = None
        self._connected = False
        self._cancelled: set[str] = set()
        self._connect_lock: asyncio.Lock | None = None

    @classmethod
    def from_urls(cls, broker: str | None = None, backend: str | None = None) -> Flowrra:
        """``Flowrra.from_urls()`` is the in-process default; URLs choose shared stores."""
        return cls(Config(broker=BrokerConfig(broker) if broker else None,
                          backend=BackendConfig(backend) if backend else None))

    # -- registration ------------------------------------------------------------------
    def task(self, name: str | None = None, cpu_bound: bool = False,
             max_retries: int | None = None, retry_delay: float | None = None,
             timeout: float | None = None, priority: int = 0,
             queue: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a task: ``async def`` for I/O, plain ``def`` with ``cpu_bound=True``."""
        cfg = self.config.executor
        return self.registry.task(
            name=name, cpu_bound=cpu_bound,
            max_retries=cfg.max_retries if max_retries is None else max_retries,
            retry_delay=cfg.retry_delay if retry_delay is None else retry_delay,
            timeout=cfg.task_timeout if timeout is None else timeout,
            priority=priority, queue=queue,
        )

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    @property
    def worker(self) -> Worker | None:
        return self._worker

    async def connect(self) -> None:
        """Open the broker and backend without consuming tasks (producer / web process)."""
        if self._connected:
            return
        event_bus.add_relay(self._relay)  # again, if stop() took it off
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._connected:
                return
            await self.broker.connect()
            await self.backend.connect()
            self._connected = True

    async def start(self, consume: bool = True, *, io_workers: int | None = None,
                    cpu_workers: int | None = None, queues: Sequence[str] | None = None) -> None:
        """Connect and (unless ``consume=False``) run tasks in this process."""
        await self.connect()
        await self._relay.pin(True)
        if consume and self._worker is None:
            self._worker = Worker(self, io_workers=io_workers, cpu_workers=cpu_workers,
                                  queues=queues or ("default",))
            await self._worker.start()
        sched = self.config.scheduler
        if sched is not None and sched.enabled:
            await self.create_scheduler(check_interval=sched.check_interval).start()
        elif self._scheduler is not None and not self._scheduler.is_running:
            # A scheduler made with create_scheduler() before start() runs with the
            # app, as in 0.1.8 (its docs call scheduler.start() only sometimes).
            await self._scheduler.start()

    async def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop taking work, let running tasks finish within ``timeout``, hand back the rest."""
        if self._scheduler is not None and self._scheduler.is_running:
            await self._scheduler.stop()
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop(wait=wait, timeout=timeout)
        # A stopped app no longer relays: later subscribers must not reconnect it.
        event_bus.remove_relay(self._relay)
        await self._relay.pin(False)
        await self._relay.set_demand(False)
        await self.transport.close()
        if self._connected:
            self._connected = False
            await self.backend.close()
            await self.broker.close()

    async def __aenter__(self) -> Flowrra:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _ensure_ready(self) -> None:
        if self._connected:
            return
        if not self.broker.shared:
            raise ExecutorNotRunningError()
        await self.connect()

    # -- submission ------------------------------------------------------------------
    async def submit(self, task_or_name: TaskRef, *args: Any, priority: int = 0,
                     **kwargs: Any) -> str:
        """Queue a task and return its id; lower ``priority`` runs first.

        ``priority`` defaults to 0 as in flowrra 0.1; a default set with
        ``@app.task(priority=...)`` applies to ``apply_async`` and schedules.
        """
        if not self._connected:
            await self._ensure_ready()
        task = self._build_task(task_or_name, args, kwargs, priority)
        if self.local:
            self._record_nowait(task.record)  # type: ignore[arg-type]
            self.broker.enqueue_nowait(task)
        else:
            await self._record(task.record)  # type: ignore[arg-type]
            await self.broker.enqueue(task)
        return task.id

    async def apply_async(self, task_or_name: TaskRef, args: Sequence[Any] = (),
                          kwargs: dict[str, Any] | None = None, *, priority: int | None = None,
                          max_retries: int | None = None, retry_delay: float | None = None,
                          timeout: float | None = None, task_id: str | None = None,
                          countdown: float | None = None, eta: datetime | float | None = None,
                          queue: str | None = None) -> str:
        """Queue a task with explicit options.

        An explicit ``task_id`` makes submission idempotent: if that id was already
        submitted, nothing new is queued and the id is returned (schedulers rely on it).
        Already submitted means: the broker still holds or remembers the id (its
        dedupe window), or a record that is no longer pending exists. A pending
        record the broker never received (its submitter died in between) is
        submitted again.
        """
        await self._ensure_ready()
        if isinstance(eta, datetime):
            eta = eta.timestamp()
        if countdown is not None:
            eta = time.time() + countdown
        task = self._build_task(task_or_name, tuple(args), kwargs or {}, priority, task_id, {
            "max_retries": max_retries, "retry_delay": retry_delay, "timeout": timeout,
            "eta": eta, "queue": queue})
        if task_id is not None and await self._already_submitted(task_id):
            return task_id
        await self._record(task.record)  # type: ignore[arg-type]
        await self.broker.enqueue(task, dedupe=task_id is not None)
        return task.id

    async def _already_submitted(self, task_id: str) -> bool:
        if await self.broker.is_duplicate(task_id):
            return True
        record = await self.backend.get(task_id)
        return record is not None and record.status is not TaskStatus.PENDING

    async def submit_many(self, calls: Iterable[tuple[TaskRef, Sequence[Any], dict[str, Any]]
                                               | TaskRef], *, priority: int = 0) -> list[str]:
        """Queue many tasks in one broker round trip; each call is ``(task, args, kwargs)``."""
        await self._ensure_ready()
        tasks: list[Task] = []
        for call in calls:
            ref, args, kwargs = call if isinstance(call, tuple) else (call, (), {})
            tasks.append(self._build_task(ref, tuple(args), kwargs or {}, priority))
        # Stored concurrently: shared backends batch them into few round trips.
        await asyncio.gather(*(self._record(task.record) for task in tasks))  # type: ignore[arg-type]
        await self.broker.enqueue_many(tasks)
        return [task.id for task in tasks]

    def _build_task(self, ref: TaskRef, args: tuple[Any, ...], kwargs: dict[str, Any],
                    priority: int | None, task_id: str | None = None,
                    options: dict[str, Any] | None = None) -> Task:
        """Validate a call and build its message with the pending record attached.

        ``options`` (max_retries, retry_delay, timeout, eta, queue) override the
        task's registered defaults when not None.
        """
        definition = self.registry.lookup(ref)
        if args:
            ensure_serializable(args, f"The arguments of task '{definition.name}'")
        if kwargs:
            ensure_serializable(kwargs, f"The keyword arguments of task '{definition.name}'")
        if priority is None:
            priority = definition.priority
        now = datetime.now(UTC)
        task_id = task_id or _new_id()
        task = Task(task_id, definition.name, args, kwargs, definition.max_retries,
                    definition.retry_delay, 0, priority, definition.cpu_bound,
                    definition.timeout, definition.queue, now)
        if options:
            for name, value in options.items():
                if value is not None:
                    setattr(task, name, value)
        task.record = _pending_record(task_id, task.name, args, kwargs, now, priority, task.queue)
        return task

    async def _record(self, record: TaskResult) -> None:
        """Store a state change and publish it as a ``task.update`` event."""
        remote = self.transport.remote and self._connected
        if not (remote or event_bus._subscribers):
            await self.backend.store_record(record)
            return
        data = record.to_dict  # built once, for the store and for the event
        await self.backend.store_record(record, data)
        event = self._event(data)
        if remote:
            try:
                await self.transport.publish(event)
            except Exception as exc:
                logger.warning("could not publish event for task %s: %s", record.task_id, exc)

    def _record_nowait(self, record: TaskResult) -> None:
        """:meth:`_record` for a :attr:`local` app: nothing to await, nothing to publish."""
        self.backend.store_nowait(record)
        if event_bus._subscribers:
            self._event(record.to_dict)

    def _event(self, data: dict[str, Any]) -> dict[str, Any]:
        """Deliver the ``task.update`` event of a record (as ``to_dict``) here; return it."""
        event = task_event(data)
        event["origin"] = self.instance_id
        event_bus.deliver(event)
        return event

    # -- results ---------------------------------------------------------------------
    async def get_result(self, task_id: str) -> TaskResult | None:
        await self._ensure_ready()
        return await self.backend.get(task_id)

    async def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait until the task is final; raises :class:`TaskTimeoutError` after ``timeout``."""
        if not self._connected:
            await self._ensure_ready()
        if self.local:
            record = self.backend.final_nowait(task_id)
            if record is not None:
                return record
        return await self.backend.wait_for(task_id, timeout)

    # -- control -------------------------------------------------------------------------
    async def cancel(self, task_id: str) -> bool:
        """A waiting task never runs; a running one is interrupted. False if already final."""
        await self._ensure_ready()
        record = await self.backend.get(task_id)
        if record is None or record.is_complete:
            return False
        if await self.broker.revoke(task_id):
            record.status = TaskStatus.CANCELLED
            record.error = "Task was cancelled before it ran"
            record.finished_at = utcnow()
            await self._record(record)
            return True
        self._on_control({"type": "control.cancel", "task_id": task_id})
        if self.transport.remote:
            await self.transport.publish(
                {"type": "control.cancel", "task_id": task_id, "origin": self.instance_id})
        return True

    def _on_control(self, event: dict[str, Any]) -> None:
        if event.get("type") == "control.cancel" and isinstance(event.get("task_id"), str):
            if len(self._cancelled) > 10_000:
                self._cancelled.clear()
            self._cancelled.add(event["task_id"])
            if self._worker is not None:
                self._worker.cancel_running(event["task_id"])

    async def retry(self, task_id: str) -> bool:
        """Run a failed or cancelled task again under the same id (dead letters included)."""
        await self._ensure_ready()
        record = await self.backend.get(task_id)
        final = record is not None and record.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)
        if final:
            # Record "pending" before the broker can hand the task to a worker: recorded
            # after, it could overwrite the running/finished state of a fast worker.
            await self._record(_pending_record(task_id, record.task_name, record.args,
                                               record.kwargs, record.submitted_at,
                                               record.priority, record.queue))
        task = await self.broker.retry_dead_letter(task_id)
        if task is not None:
            if not final:  # its record had expired
                await self._record(_pending_record(task.id, task.name, task.args, task.kwargs,
                                                   task.submitted_at, task.priority, task.queue))
            return True
        if record is None or not final:
            return False
        if self.registry.get(record.task_name) is None:
            await self._record(record)  # nothing was queued: put the record back
            return False
        task = self._build_task(record.task_name, record.args, record.kwargs, record.priority,
                                task_id, {"queue": record.queue})
        task.submitted_at, task.record = record.submitted_at, None  # pending is stored above
        await self.broker.enqueue(task)
        return True

    async def list_dead_letters(self, limit: int | None = None, offset: int = 0) -> list[DeadLetter]:
        await self._ensure_ready()
        return await self.broker.list_dead_letters(limit, offset)

    async def purge_dead_letters(self, task_id: str | None = None) -> int:
        await self._ensure_ready()
        return await self.broker.purge_dead_letters(task_id)

    # -- scheduler -----------------------------------------------------------------------
    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    def create_scheduler(self, backend: Any = None, check_interval: float = 60.0) -> Scheduler:
        """Create (once) the scheduler bound to this app; SQLite file by default."""
        if self._scheduler is None:
            from flowrra.scheduler import create_scheduler

            self._scheduler = create_scheduler(self, backend=backend, check_interval=check_interval)
        return self._scheduler


def _pending_record(task_id: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                    submitted_at: datetime | None, priority: int, queue: str) -> TaskResult:
    """The record of a task that waits in the broker: the one shape for every submit path."""
    return TaskResult(task_id, TaskStatus.PENDING, name, None, None, submitted_at, None, None, 0,
                      args, kwargs, None, priority, queue)


def _make_broker(broker: Broker | str | None, cfg: BrokerConfig | None) -> Broker:
    if isinstance(broker, Broker):
        return broker
    url = broker or (cfg.url if cfg else None)
    if url is None or url.startswith("memory://"):
        vt = cfg.visibility_timeout if cfg else 30.0
        return get_broker(None, visibility_timeout=vt)
    options: dict[str, Any] = {}
    if cfg is not None:
        options = {"max_connections": cfg.max_connections, "socket_timeout": cfg.socket_timeout,
                   "retry_on_timeout": cfg.retry_on_timeout, "queue_key": cfg.queue_key,
                   "visibility_timeout": cfg.visibility_timeout}
    return get_broker(url, **options)


def _make_backend(backend: ResultBackend | str | None, cfg: BackendConfig | None,
                  broker: Broker) -> ResultBackend:
    if isinstance(backend, ResultBackend):
        return backend
    url = backend or (cfg.url if cfg else None) or broker.default_backend_url()
    if url is None or url.startswith("memory://"):
        ttl = cfg.ttl if cfg else None
        return get_backend(None, ttl=ttl)
    options: dict[str, Any] = {}
    if cfg is not None:
        options = {"ttl": cfg.ttl, "max_connections": cfg.max_connections,
                   "socket_timeout": cfg.socket_timeout, "retry_on_timeout": cfg.retry_on_timeout}
    return get_backend(url, **options)
