"""The dashboard on its own server: ``flowrra ui module:app`` (uvicorn + FastAPI).

It serves ``/flowrra/`` (``/`` redirects there). The process connects to the
app's broker and result store without consuming tasks, so with a shared broker
(``FLOWRRA_BROKER_URL=redis://...``) it shows the work of every worker. With the
in-memory default it can only show tasks of its own process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

try:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "The standalone dashboard needs FastAPI and uvicorn: pip install 'flowrra[ui-fastapi]'"
    ) from exc

from flowrra.ui.fastapi import create_router
from flowrra.ui.http import AuthHook
from flowrra.ui.service import normalize_prefix

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["create_app", "serve"]

logger = logging.getLogger(__name__)


def create_app(flowrra: Flowrra, *, prefix: str = "/flowrra", auth: AuthHook | None = None,
               read_only: bool = False, manage_app: bool = True) -> FastAPI:
    """An ASGI app serving the dashboard at ``prefix``.

    With ``manage_app`` the app connects Flowrra on start-up (without consuming
    tasks, unless it is already running) and closes it on shutdown if it opened it.
    """
    prefix = normalize_prefix(prefix)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        opened = manage_app and not flowrra.is_running
        if opened:
            await flowrra.connect()
            if not flowrra.broker.shared:
                logger.warning("this app uses the in-process broker: the dashboard only sees "
                               "tasks of this process. Set FLOWRRA_BROKER_URL=redis://... to see "
                               "the work of separate workers.")
        try:
            yield
        finally:
            if opened:
                await flowrra.stop()

    web = FastAPI(title="Flowrra dashboard", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    web.include_router(create_router(flowrra, auth=auth, read_only=read_only), prefix=prefix)
    if prefix:
        @web.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse(f"{prefix}/")

    return web


async def serve(app: Flowrra, host: str = "127.0.0.1", port: int = 8000, *,
                prefix: str = "/flowrra", auth: AuthHook | None = None, read_only: bool = False,
                log_level: str = "info", **uvicorn_options: Any) -> None:
    """Serve the dashboard until interrupted (a coroutine, so it can share a running loop)."""
    config = uvicorn.Config(create_app(app, prefix=prefix, auth=auth, read_only=read_only),
                            host=host, port=port, log_level=log_level, **uvicorn_options)
    server = uvicorn.Server(config)
    logger.info("Flowrra dashboard on http://%s:%d%s/", host, port, normalize_prefix(prefix))
    await server.serve()
