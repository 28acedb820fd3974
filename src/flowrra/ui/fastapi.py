"""FastAPI adapter: ``app.include_router(create_router(flowrra), prefix="/flowrra")``.

The router forwards every request under its prefix to :class:`UIService` and
serves the live socket at ``<prefix>/ws``. Guard it with ``auth=`` (a callable
receiving the Starlette ``Request`` or ``WebSocket``; return False for 403 or
raise :class:`flowrra.ui.AuthError` for 401) and/or FastAPI ``dependencies=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

try:
    from fastapi import APIRouter, Request, WebSocket
    from fastapi.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "flowrra.ui.fastapi needs FastAPI: pip install 'flowrra[ui-fastapi]'"
    ) from exc

from flowrra.ui.http import AuthHook, UIRequest, UIResponse, mount_prefix, run_auth
from flowrra.ui.legacy import LegacyAdapter
from flowrra.ui.service import UIService

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["FastAPIAdapter", "FlowrraRouter", "create_router"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _native(response: UIResponse) -> Response:
    return Response(response.body, status_code=response.status, headers=response.headers,
                    media_type=response.content_type)


async def _refuse(websocket: WebSocket, status: int, message: str, close_code: int,
                  headers: dict[str, str] | None = None) -> None:
    """Answer the handshake with an HTTP error if the server can, else close with ``close_code``."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = {"error": message, "detail": message, "status": status}
        await websocket.send_denial_response(JSONResponse(body, status, headers=headers))
    else:
        await websocket.close(code=close_code, reason=message[:120])


class FlowrraRouter(APIRouter):
    """The dashboard's router; assigning ``router.dependencies`` re-applies them.

    FastAPI copies a router's dependencies into each route when the route is
    added, so 0.1.8's documented ``router.dependencies = [Depends(check)]``
    after ``create_router()`` would otherwise protect nothing. Assigning them
    here rebuilds the routes (do it before ``include_router``, which copies the
    routes again).
    """

    flowrra_service: UIService
    flowrra_auth: AuthHook | None = None

    def add_flowrra_routes(self) -> None:
        self.routes.clear()
        _add_routes(self, self.flowrra_service, self.flowrra_auth)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "dependencies" and "flowrra_service" in self.__dict__:
            self.add_flowrra_routes()


def create_router(flowrra: Flowrra, *, auth: AuthHook | None = None, read_only: bool = False,
                  dependencies: Sequence[Any] | None = None,
                  service: UIService | None = None,
                  allowed_origins: Sequence[str] | None = None) -> APIRouter:
    """The dashboard, JSON API and ``/ws`` socket as a FastAPI router.

    ``allowed_origins`` lists the other browser origins (``https://host[:port]``)
    whose pages may open the socket or press the buttons; the dashboard's own
    origin always may.
    """
    service = service or UIService(flowrra, read_only=read_only, allowed_origins=allowed_origins)
    router = FlowrraRouter(dependencies=list(dependencies or []))
    router.flowrra_service = service
    router.flowrra_auth = auth
    router.add_flowrra_routes()
    return router


def _add_routes(router: APIRouter, service: UIService, auth: AuthHook | None) -> None:
    """The socket and the catch-all route, with the router's dependencies as they are now."""
    @router.websocket("/ws")
    async def flowrra_socket(websocket: WebSocket) -> None:
        refusal = (service.check_socket_origin(websocket.headers)
                   or await run_auth(auth, websocket))
        if refusal is not None:
            await _refuse(websocket, refusal.status, refusal.message, 4000 + refusal.status,
                          refusal.headers)
            return
        events = await service.subscribe()
        if events is None:  # the relay cannot listen (broker down): refuse, the page polls
            await _refuse(websocket, 503, "Live updates are unavailable: cannot subscribe to "
                          "task events (is the broker reachable?)", 1011)
            return
        await websocket.accept()

        async def receive() -> str | bytes | None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            return message.get("text") or message.get("bytes") or ""

        await service.stream(websocket.send_text, receive, events)

    @router.api_route("/{path:path}", methods=_METHODS, include_in_schema=False)
    async def flowrra_ui(request: Request, path: str) -> Response:
        refusal = await service.authorize(auth, request, path)
        if refusal is not None:
            return _native(refusal)
        prefix = mount_prefix(request.scope.get("path") or request.url.path, path)
        ui_request = UIRequest(request.method, path, dict(request.query_params),
                               dict(request.headers), await request.body())
        return _native(await service.handle(ui_request, prefix))



class FastAPIAdapter(LegacyAdapter[APIRouter]):
    """0.1.8's ``FastAPIAdapter(...).get_routes()``: ``create_router(flowrra, **options)``."""

    factory = staticmethod(create_router)
    get_router = LegacyAdapter.get_routes
