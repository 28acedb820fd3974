"""One way to talk to the dashboard of every web framework, for the parameterized UI suites.

Each framework registers a factory in :data:`FRAMEWORKS`: an async context
manager taking :class:`UIOptions` and yielding a :class:`Harness` whose Flowrra
app is started (worker consuming) and whose dashboard is mounted at
``/flowrra``. A new framework (Django) adds itself from its own module
``tests/ui/harness_<name>.py``; ``tests/ui/conftest.py`` imports those.

``Harness.run(coro)`` runs app-side code on the loop the app lives on (the
test's loop, or a private loop for synchronous frameworks like Flask).
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from flowrra import Flowrra

PREFIX = "/flowrra"
_MISSING: Any = object()


@dataclass
class UIOptions:
    read_only: bool = False
    auth: Callable[[Any], Any] | None = None
    scheduler: bool = False
    prefix: str = PREFIX


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Harness:
    framework: str
    app: Flowrra
    send: Callable[..., Coroutine[Any, Any, Reply]]
    runner: Callable[[Coroutine[Any, Any, Any]], Coroutine[Any, Any, Any]] | None = None
    supports_ws: bool = False
    prefix: str = PREFIX
    extra: dict[str, Any] = field(default_factory=dict)

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self.runner is None:
            return await coro
        return await self.runner(coro)

    async def request(self, method: str, path: str, *, json: Any = _MISSING, body: bytes | None = None,
                      headers: dict[str, str] | None = None, follow: bool = False) -> Reply:
        """``path`` is relative to the prefix and may carry a query string."""
        headers = dict(headers or {})
        if json is not _MISSING:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        url = f"{self.prefix}/{path}" if path else f"{self.prefix}/"
        reply = await self.send(method, url, body or b"", headers)
        hops = 0
        while follow and 300 <= reply.status < 400 and hops < 5:
            location = reply.headers.get("location", "")
            location = location.split("://", 1)[-1]
            location = location[location.index("/"):] if "/" in location else "/"
            reply = await self.send("GET", location, b"", headers)
            hops += 1
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)


Factory = Callable[[UIOptions], contextlib.AbstractAsyncContextManager[Harness]]
FRAMEWORKS: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def decorator(factory: Factory) -> Factory:
        FRAMEWORKS[name] = factory
        return factory

    return decorator


def build_app() -> Flowrra:
    """An in-memory app with the tasks the UI suites use."""
    app = Flowrra()
    gates: dict[str, asyncio.Event] = {}
    app.test_gates = gates  # type: ignore[attr-defined]

    @app.task(name="ui.add")
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="ui.boom", max_retries=0)
    async def boom(message: str = "kaput") -> None:
        raise RuntimeError(message)

    @app.task(name="ui.sleepy")
    async def sleepy(seconds: float = 60.0) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    @app.task(name="ui.flaky", max_retries=3, retry_delay=60.0)
    async def flaky() -> None:
        raise ValueError("not yet")

    @app.task(name="ui.gated")
    async def gated(key: str) -> str:
        await gates.setdefault(key, asyncio.Event()).wait()
        return f"opened {key}"

    return app


def forget(app: Flowrra) -> None:
    """Take a stopped app's relay off the process-wide bus (apps never do it themselves),
    so later subscribers in this test process do not switch it on again."""
    from flowrra.events import event_bus

    event_bus.remove_relay(app._relay)


async def start_app(app: Flowrra, options: UIOptions) -> None:
    if options.scheduler:
        app.create_scheduler("memory://")
    await app.start()


# -- FastAPI ------------------------------------------------------------------------------
@register("fastapi")
@contextlib.asynccontextmanager
async def fastapi_harness(options: UIOptions) -> AsyncIterator[Harness]:
    import httpx
    from fastapi import FastAPI

    from flowrra.ui.fastapi import create_router

    app = build_app()
    await start_app(app, options)
    web = FastAPI()
    web.include_router(create_router(app, auth=options.auth, read_only=options.read_only),
                       prefix=options.prefix)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver")

    async def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        r = await client.request(method, url, content=body or None, headers=headers)
        return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    try:
        yield Harness("fastapi", app, send, supports_ws=True, prefix=options.prefix,
                      extra={"web": web})
    finally:
        await client.aclose()
        await app.stop()
        forget(app)


# -- Quart --------------------------------------------------------------------------------
def quart_app(app: Flowrra, options: UIOptions) -> Any:
    from quart import Quart

    from flowrra.ui.flask import create_blueprint

    web = Quart(__name__)
    web.register_blueprint(create_blueprint(app, auth=options.auth, read_only=options.read_only),
                           url_prefix=options.prefix)
    return web


@register("quart")
@contextlib.asynccontextmanager
async def quart_harness(options: UIOptions) -> AsyncIterator[Harness]:
    app = build_app()
    await start_app(app, options)
    web = quart_app(app, options)
    client = web.test_client()

    async def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        r = await client.open(url, method=method, data=body, headers=headers)
        return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()},
                     await r.get_data(as_text=False))

    try:
        yield Harness("quart", app, send, supports_ws=True, prefix=options.prefix,
                      extra={"web": web})
    finally:
        await app.stop()
        forget(app)


# -- Flask (synchronous views; the app lives on a private loop thread) -------------------------
class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@register("flask")
@contextlib.asynccontextmanager
async def flask_harness(options: UIOptions) -> AsyncIterator[Harness]:
    from flask import Flask

    from flowrra.ui.flask import create_blueprint

    portal = LoopThread()
    app = build_app()
    await portal.run(start_app(app, options))
    web = Flask(__name__)
    web.register_blueprint(create_blueprint(app, auth=options.auth, read_only=options.read_only,
                                            loop=portal.loop), url_prefix=options.prefix)
    client = web.test_client()

    def send_sync(method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        path, _, query = url.partition("?")
        r = client.open(path, method=method, data=body, headers=headers, query_string=query or None)
        return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.get_data())

    async def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        return await asyncio.to_thread(send_sync, method, url, body, headers)

    try:
        yield Harness("flask", app, send, runner=portal.run, prefix=options.prefix,
                      extra={"web": web})
    finally:
        await portal.run(app.stop())
        portal.close()
        forget(app)
