"""Flowrra inside a Quart app, with the live dashboard at /flowrra/.

Run (from the repository root):

    hypercorn examples.quart_app:app

then open http://127.0.0.1:8000/flowrra/ and submit a few tasks:

    curl -X POST 'http://127.0.0.1:8000/add?x=2&y=3'
    curl -X POST 'http://127.0.0.1:8000/flaky'

With no configuration everything lives in this process: the in-memory broker,
and a worker running inside the web server.

Redis and separate workers: point every process at the same broker, run the
workers on their own, and the web process only submits and watches (events
from the workers reach the dashboard through Redis):

    export FLOWRRA_BROKER_URL=redis://127.0.0.1:6379/0
    flowrra worker examples.quart_app:flowrra        # as many as you like, anywhere
    hypercorn examples.quart_app:app

The same blueprint works on plain Flask (pages and JSON API; the browser polls
every 15 s because Flask has no WebSocket).
"""

from __future__ import annotations

import asyncio
import os
import random

from quart import Quart, request

from flowrra import Config, Flowrra
from flowrra.ui.flask import create_blueprint

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


app = Quart(__name__)
# Guard it in production: create_blueprint(flowrra, auth=callable_taking_the_request).
app.register_blueprint(create_blueprint(flowrra), url_prefix="/flowrra")


@app.before_serving
async def start_flowrra() -> None:
    # With a shared broker (Redis) this process only produces; workers run elsewhere.
    await flowrra.start(consume=not flowrra.broker.shared)
    await scheduler.schedule_interval(add, 30, args=(1, 1), description="heartbeat every 30 s")
    await scheduler.start()


@app.after_serving
async def stop_flowrra() -> None:
    await flowrra.stop()


@app.post("/add")
async def submit_add() -> dict[str, str]:
    x = int(request.args.get("x", 1))
    y = int(request.args.get("y", 2))
    return {"task_id": await flowrra.submit(add, x, y)}


@app.post("/flaky")
async def submit_flaky() -> dict[str, str]:
    return {"task_id": await flowrra.submit(flaky)}
