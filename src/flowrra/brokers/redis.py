"""Redis broker: durable, shared, at-least-once delivery with priorities across all workers.

Design (see :mod:`flowrra.brokers.redis_scripts` for the key layout):

* Ready tasks wait in one sorted set per queue ordered by (priority, enqueue
  sequence), so priority holds across every worker; delayed tasks (retries,
  countdowns) wait in a sorted set by eta inside Redis.
* ``dequeue`` claims atomically in Lua: it promotes due delayed tasks, recovers
  expired leases (the tasks of a killed worker), pops the best tasks of the
  requested queues and records a lease whose deadline comes from the server
  clock. Leases are renewed by the worker's heartbeat (``extend_leases``), so a
  long task on a live worker is never taken from it.
* No busy polling: idle workers block in ``BLPOP`` on per-queue wake lists (about
  one token per ready task) for at most ``max_wait`` seconds; the claim script is
  pipelined behind the BLPOP, so a wake-up and its claim cost one round trip. All
  the runners of a worker share that one blocking connection through a
  :class:`ClaimCoalescer`, which claims exactly as many tasks as runners wait.
* Enqueueing and acknowledging are batched: concurrent calls share one script
  call. Acks are flushed in the background (the worker acks after the result is
  stored; a flush lost with the process means the task runs again, never that it
  is lost). A connection failure is retried with backoff for ``socket_timeout``
  seconds, then reported as :class:`~flowrra.exceptions.BackendError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flowrra.brokers import redis_scripts as lua
from flowrra.brokers.base import Broker, DeadLetter, retry_dead_letter_task
from flowrra.brokers.batching import Batcher, ClaimCoalescer
from flowrra.redis_client import LuaScript, RedisConnection, RedisSettings, fast_dumps, fast_loads
from flowrra.task import Task, utcnow
from flowrra.transports.base import EventTransport

logger = logging.getLogger(__name__)


class RedisBroker(Broker):
    durable = True
    shared = True
    schemes = ("redis", "rediss", "unix")

    def __init__(self, url: str = "redis://localhost:6379/0", *, max_connections: int = 50,
                 socket_timeout: float = 5.0, retry_on_timeout: bool = True,
                 queue_key: str | None = None, visibility_timeout: float = 30.0,
                 max_dead_letters: int = 10_000, dedupe_ttl: float = 86_400.0,
                 max_wait: float = 1.0) -> None:
        super().__init__(visibility_timeout=visibility_timeout)
        if visibility_timeout <= 0:
            raise ValueError(f"visibility_timeout must be greater than zero, got {visibility_timeout!r}")
        if max_dead_letters <= 0:
            raise ValueError(f"max_dead_letters must be greater than zero, got {max_dead_letters!r}")
        self.settings = RedisSettings.from_url(
            url, key_prefix=queue_key, max_connections=max_connections,
            socket_timeout=socket_timeout, retry_on_timeout=retry_on_timeout)
        self.url = self.settings.public_url()
        self.prefix = self.settings.prefix
        self.max_dead_letters = max_dead_letters
        self.dedupe_ttl = max(1, int(dedupe_ttl))
        # a blocking wait must end well inside the socket timeout
        self.max_wait = max(0.01, min(max_wait, socket_timeout / 2))
        self._conn = RedisConnection(self.settings, "broker")
        self._scripts = {name: LuaScript.of(getattr(lua, name)) for name in (
            "ENQUEUE", "CLAIM", "ACK", "REQUEUE", "RELEASE", "EXTEND", "REVOKE", "DEAD_LETTER",
            "RETRY_DEAD", "PURGE_DEAD", "LIST_DEAD", "STATS", "REGISTER_WORKER", "LIST_WORKERS")}
        self._enqueuer: Batcher[tuple[Task, bool], int] = Batcher(
            self._enqueue_batch, max_inflight=2, name="flowrra-redis-enqueue")
        self._acker: Batcher[str, None] = Batcher(
            self._ack_batch, max_inflight=2, name="flowrra-redis-ack")
        self._coalescers: dict[tuple[tuple[str, ...], str], ClaimCoalescer[Task]] = {}

    # -- lifecycle ------------------------------------------------------------------
    async def connect(self) -> None:
        if self._conn.connected:
            return
        self._conn.connect()
        for coalescer in self._coalescers.values():
            coalescer.reopen()

    async def close(self) -> None:
        for coalescer in self._coalescers.values():
            await coalescer.close()
        await self._enqueuer.close()
        await self._acker.close()
        await self._conn.close()

    def event_transport(self) -> EventTransport:
        from flowrra.transports.redis import RedisTransport

        return RedisTransport(self.url, key_prefix=self.prefix,
                              max_connections=self.settings.max_connections,
                              socket_timeout=self.settings.socket_timeout,
                              retry_on_timeout=self.settings.retry_on_timeout)

    def default_backend_url(self) -> str | None:
        return self.url

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._conn.script(self._scripts[name], self.prefix, *args)

    # -- producing ------------------------------------------------------------------
    async def enqueue(self, task: Task, *, dedupe: bool = False) -> bool:
        return bool(await self._enqueuer.submit((task, dedupe)))

    async def enqueue_many(self, tasks: Sequence[Task]) -> None:
        for start in range(0, len(tasks), 500):
            await self._enqueue_batch([(task, False) for task in tasks[start:start + 500]])

    async def _enqueue_batch(self, items: list[tuple[Task, bool]]) -> list[int]:
        args: list[Any] = [self.dedupe_ttl]
        for task, dedupe in items:
            args += (task.id, task.queue, task.priority, _eta_ms(task.eta), "1" if dedupe else "0",
                     fast_dumps(task.to_dict()))
        return await self._run("ENQUEUE", *args)

    async def is_duplicate(self, task_id: str) -> bool:
        # The same two checks as the ENQUEUE script's dedupe.
        queued, seen = await self._conn.pipeline([
            (("HEXISTS", self._conn.key("msg"), task_id), None),
            (("EXISTS", self._conn.key("seen", task_id)), None)])
        return bool(queued) or bool(seen)

    async def revoke(self, task_id: str) -> bool:
        return bool(await self._run("REVOKE", task_id))

    # -- consuming ------------------------------------------------------------------
    async def dequeue(self, queues: Sequence[str], worker_id: str,
                      timeout: float = 1.0) -> Task | None:
        if not queues:
            raise ValueError("dequeue needs at least one queue name")
        key = (tuple(queues), worker_id)
        coalescer = self._coalescers.get(key)
        if coalescer is None:
            coalescer = self._coalescers[key] = self._make_coalescer(key[0], worker_id)
        return await coalescer.get(timeout)

    def _make_coalescer(self, queues: tuple[str, ...], worker_id: str) -> ClaimCoalescer[Task]:
        wake_keys = [self._conn.key("wake", q) for q in queues] + [self._conn.key("hint")]
        vt_ms = int(self.visibility_timeout * 1000)
        script = self._scripts["CLAIM"]

        async def claim(n: int, wait: float) -> tuple[list[Task], float | None]:
            claim_args = ("EVALSHA", script.sha, 0, self.prefix, n, worker_id, vt_ms,
                          self.max_dead_letters, *queues)
            if wait > 0:  # wake-up and claim in one round trip
                blpop = ("BLPOP", *wake_keys, round(max(0.01, wait), 3))
                reply = (await self._conn.pipeline([(blpop, None), (claim_args, script)]))[1]
            else:
                reply = (await self._conn.pipeline([(claim_args, script)]))[0]
            due_ms = float(reply[0])
            tasks = []
            for i in range(1, len(reply), 2):
                task = await self._decode(reply[i], reply[i + 1])
                if task is not None:
                    task.receipt = worker_id
                    tasks.append(task)
            return tasks, (None if due_ms < 0 else due_ms / 1000)

        async def release(tasks: list[Task]) -> None:
            await self._release(tasks, worker_id)

        return ClaimCoalescer(claim, release, max_wait=self.max_wait,
                              name=f"flowrra-redis-claim-{'+'.join(queues)}")

    async def _decode(self, task_id: str, message: str) -> Task | None:
        """Decode a claimed message; an undecodable one goes to the dead letters."""
        raw = message[16:]
        try:
            task = Task.from_dict(fast_loads(raw))
            if task.id != task_id:
                raise ValueError(f"message id {task.id!r} does not match its key {task_id!r}")
            return task
        except Exception as exc:
            logger.error("task %s cannot be decoded (%s); moved to the dead letters", task_id, exc)
            letter = DeadLetter(task_id, "", f"message could not be decoded: {exc}", utcnow(),
                                None, raw)
            await self._run("DEAD_LETTER", self.max_dead_letters, task_id, fast_dumps(letter.to_dict()))
            return None

    async def ack(self, task: Task) -> None:
        # Flushed in the background with the acks of other runners: the worker calls
        # this after the result is stored, so the runner can claim its next task at once.
        # Should this process die before the flush, the task's lease expires and it runs
        # again -- the at-least-once contract, never a loss. close() flushes the rest.
        self._acker.submit_nowait(task.id)

    async def _ack_batch(self, ids: list[str]) -> None:
        try:
            await self._run("ACK", *ids)
        except Exception as exc:
            logger.warning("could not acknowledge %d task(s) (%s); they will run again once "
                           "their leases expire", len(ids), exc)

    async def requeue(self, task: Task) -> None:
        await self._run("REQUEUE", task.id, task.queue, task.priority, _eta_ms(task.eta),
                        fast_dumps(task.to_dict()))

    async def release(self, tasks: Sequence[Task]) -> None:
        by_owner: dict[str, list[Task]] = {}
        for task in tasks:
            by_owner.setdefault(str(task.receipt or ""), []).append(task)
        for owner, owned in by_owner.items():
            await self._release(owned, owner)

    async def _release(self, tasks: Sequence[Task], worker_id: str) -> None:
        if tasks:
            args: list[Any] = [worker_id]
            for task in tasks:
                args += (task.id, task.queue, task.priority)
            await self._run("RELEASE", *args)

    async def extend_leases(self, tasks: Sequence[Task], worker_id: str) -> None:
        if tasks:
            await self._run("EXTEND", worker_id, int(self.visibility_timeout * 1000),
                            *[task.id for task in tasks])

    # -- dead letters ---------------------------------------------------------------
    async def dead_letter(self, task: Task, error: str) -> None:
        letter = DeadLetter.for_task(task, error)
        await self._run("DEAD_LETTER", self.max_dead_letters, task.id, fast_dumps(letter.to_dict()))

    async def list_dead_letters(self, limit: int | None = None, offset: int = 0) -> list[DeadLetter]:
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"limit and offset must not be negative, got {limit!r}, {offset!r}")
        if limit == 0:
            return []
        stop = -1 if limit is None else offset + limit - 1
        rows = await self._run("LIST_DEAD", offset, stop)
        return [_letter(row) for row in rows if row is not None]

    async def retry_dead_letter(self, task_id: str) -> Task | None:
        row = await self._conn.command("HGET", self._conn.key("deadmsg"), task_id)
        if row is None:
            return None
        task = retry_dead_letter_task(_letter(row))
        if task is None:
            return None
        moved = await self._run("RETRY_DEAD", task.id, task.queue, task.priority,
                                fast_dumps(task.to_dict()))
        return task if moved else None

    async def purge_dead_letters(self, task_id: str | None = None) -> int:
        return int(await self._run("PURGE_DEAD", task_id or ""))

    # -- introspection ----------------------------------------------------------------
    async def stats(self) -> dict[str, int]:
        await self._acker.drain()  # read our own acknowledgements
        queued, delayed, leased, dead = await self._run("STATS")
        return {"queued": int(queued), "delayed": int(delayed), "leased": int(leased),
                "dead": int(dead)}

    async def register_worker(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        info = {**info, "id": info.get("id", worker_id)}
        info.setdefault("last_seen", utcnow().isoformat())
        await self._run("REGISTER_WORKER", worker_id, max(1, int(ttl * 1000)), fast_dumps(info))

    async def unregister_worker(self, worker_id: str) -> None:
        await self._run("REGISTER_WORKER", worker_id, 0, "")

    async def list_workers(self) -> list[dict[str, Any]]:
        rows = await self._run("LIST_WORKERS")
        return [fast_loads(row) for row in rows if row is not None]


def _eta_ms(eta: float | None) -> str:
    return "" if eta is None else str(int(eta * 1000))


def _letter(row: str) -> DeadLetter:
    data = fast_loads(row)
    failed_at = data.get("failed_at")
    if failed_at:
        when = datetime.fromisoformat(failed_at)
    else:
        when = datetime.fromtimestamp(float(data.get("failed_at_ms") or 0) / 1000, UTC)
    return DeadLetter(data["task_id"], data.get("task_name") or "", data.get("error") or "",
                      when if when.tzinfo else when.replace(tzinfo=UTC),
                      data.get("payload"), data.get("raw"))
