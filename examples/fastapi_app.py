"""Flowrra inside a FastAPI app, with the live dashboard at /flowrra/.

Run (from the repository root):

    uvicorn examples.fastapi_app:app

then open http://127.0.0.1:8000/flowrra/ and submit a few tasks:

    curl -X POST 'http://127.0.0.1:8000/add?x=2&y=3'
    curl -X POST 'http://127.0.0.1:8000/flaky'

With no configuration everything lives in this process: the in-memory broker,
and a worker running inside the web server.

Redis and separate workers: point every process at the same broker, run the
workers on their own, and the web process only submits and watches (events
from the workers reach the dashboard through Redis):

    export FLOWRRA_BROKER_URL=redis://127.0.0.1:6379/0
    flowrra worker examples.fastapi_app:flowrra      # as many as you like, anywhere
    uvicorn examples.fastapi_app:app

Schedules: set FLOWRRA_SCHEDULER_DATABASE_URL (e.g. sqlite:///schedules.db or
postgresql://...) to keep them across restarts; without it they live in memory.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flowrra import Config, Flowrra
from flowrra.ui.fastapi import create_router

flowrra = Flowrra(Config.from_env())
scheduler = flowrra.create_scheduler(os.environ.get("FLOWRRA_SCHEDULER_DATABASE_URL", "memory://"),
                                     check_interval=5.0)


@flowrra.task(name="examples.add")
async def add(x: int, y: int) -> int:
    """Add two numbers, slowly enough to watch it run."""
    await asyncio.sleep(random.uniform(0.5, 2.0))
    return x + y


@flowrra.task(name="examples.flaky", max_retries=2, retry_delay=1.0)
async def flaky() -> str:
    """Fails about half the time; watch it retry, and sometimes land in the dead letters."""
    await asyncio.sleep(0.5)
    if random.random() < 0.5:
        raise ConnectionError("the remote service hung up")
    return "made it"


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # With a shared broker (Redis) this process only produces; workers run elsewhere.
    await flowrra.start(consume=not flowrra.broker.shared)
    await scheduler.schedule_interval(add, 30, args=(1, 1), description="heartbeat every 30 s")
    await scheduler.start()
    yield
    await flowrra.stop()


app = FastAPI(title="Flowrra + FastAPI example", lifespan=lifespan)
# Guard it in production: create_router(flowrra, auth=callable) or dependencies=[Depends(...)].
app.include_router(create_router(flowrra), prefix="/flowrra")


@app.post("/add")
async def submit_add(x: int = 1, y: int = 2) -> dict[str, str]:
    return {"task_id": await flowrra.submit(add, x, y)}


@app.post("/flaky")
async def submit_flaky() -> dict[str, str]:
    return {"task_id": await flowrra.submit(flaky)}
