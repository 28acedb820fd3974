"""Child processes for the SQLite multi-process tests: ``python -m tests.sqlite._child CMD URL ...``.

Each command prints one JSON line with what it did, so the test can check it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from flowrra.backends.sqlite import SQLiteBackend
from flowrra.brokers.sqlite import SQLiteBroker
from flowrra.task import Task, TaskResult, TaskStatus, utcnow
from flowrra.transports.sqlite import SQLiteTransport


async def consume(url: str, worker: str, stop_file: str) -> None:
    """Claim and ack tasks until ``stop_file`` exists and nothing is left; report their ids."""
    broker = SQLiteBroker(url)
    await broker.connect()
    got: list[str] = []

    async def runner() -> None:
        while True:
            task = await broker.dequeue(["default"], worker, timeout=0.2)
            if task is not None:
                got.append(task.id)
                await broker.ack(task)
            elif await asyncio.to_thread(os.path.exists, stop_file):
                stats = await broker.stats()
                if stats["queued"] + stats["delayed"] + stats["leased"] == 0:
                    return

    print(json.dumps({"ready": True}), flush=True)
    await asyncio.gather(*(runner() for _ in range(8)))
    await broker.close()
    print(json.dumps({"ids": got}), flush=True)


async def produce(url: str, prefix: str, count: int) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    tasks = [Task(f"{prefix}-{i}", "job", submitted_at=utcnow()) for i in range(count)]
    half = count // 2
    await asyncio.gather(*(broker.enqueue(t) for t in tasks[:half]))  # coalesced single enqueues
    await broker.enqueue_many(tasks[half:])
    await broker.close()
    print(json.dumps({"enqueued": count}), flush=True)


async def claim_and_die(url: str, visibility: float) -> None:
    """Claim one task and die without acknowledging it (like a SIGKILLed worker)."""
    broker = SQLiteBroker(url, visibility_timeout=visibility)
    await broker.connect()
    task = await broker.dequeue(["default"], "doomed", timeout=10)
    print(json.dumps({"claimed": task.id if task else None}), flush=True)
    os._exit(0)


async def finish(url: str, task_id: str) -> None:
    """Store a final record for ``task_id`` (the parent already waits for it)."""
    backend = SQLiteBackend(url)
    await backend.connect()
    await backend.store(TaskResult(task_id, TaskStatus.SUCCESS, "job", result=42,
                                   submitted_at=utcnow(), finished_at=utcnow()))
    await backend.close()
    print(json.dumps({"stored": task_id}), flush=True)


async def publish(url: str, count: int) -> None:
    transport = SQLiteTransport(url)
    for n in range(count):
        await transport.publish({"type": "test", "n": n, "pid": os.getpid()})
    await transport.close()
    print(json.dumps({"published": count}), flush=True)


def main() -> None:
    command, url, *rest = sys.argv[1:]
    started = time.monotonic()
    if command == "consume":
        asyncio.run(consume(url, rest[0], rest[1]))
    elif command == "produce":
        asyncio.run(produce(url, rest[0], int(rest[1])))
    elif command == "claim-and-die":
        asyncio.run(claim_and_die(url, float(rest[0])))
    elif command == "finish":
        asyncio.run(finish(url, rest[0]))
    elif command == "publish":
        asyncio.run(publish(url, int(rest[0])))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps({"seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
