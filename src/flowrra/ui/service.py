"""The framework-neutral dashboard: pages, static files, the JSON API and the live socket.

Every adapter (FastAPI, Flask/Quart, Django, the standalone server) builds one
:class:`UIService` and forwards requests to :meth:`UIService.handle`, and
socket connections to :meth:`UIService.stream`. All behaviour — routing,
validation, status codes, read-only mode, path-traversal checks — lives here,
so the frameworks cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flowrra.events import EventBus
from flowrra.exceptions import BackendError
from flowrra.management import FlowrraManager
from flowrra.task import utcnow
from flowrra.ui.api import ApiRouter
from flowrra.ui.http import (
    ApiError,
    AuthError,
    AuthHook,
    UIRequest,
    UIResponse,
    error_body,
    json_response,
    run_auth,
)
from flowrra.ui.origin import OriginPolicy
from flowrra.ui.pages import render_page, serve_static
from flowrra.ui.stream import DEFAULT_MAX_PENDING, EventStream

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["UIRequest", "UIResponse", "UIService", "normalize_prefix"]

logger = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[Any]]
ReceiveText = Callable[[], Awaitable[Any]]

#: Seconds a new socket waits for the cross-process relay before it is refused.
DEFAULT_SUBSCRIBE_TIMEOUT = 5.0

_MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def normalize_prefix(prefix: str | None) -> str:
    """``"flowrra/"`` -> ``"/flowrra"``; the root mount is ``""``."""
    prefix = (prefix or "").strip()
    if not prefix or prefix == "/":
        return ""
    return "/" + prefix.strip("/")


class UIService:
    """The dashboard of one :class:`~flowrra.Flowrra` app.

    ``read_only=True`` turns every mutating API call into a 403 and hides the
    action buttons, for dashboards shown to people who should only watch.
    """

    def __init__(self, app: Flowrra, *, read_only: bool = False, title: str = "Flowrra",
                 bus: EventBus | None = None, max_pending: int = DEFAULT_MAX_PENDING,
                 subscribe_timeout: float = DEFAULT_SUBSCRIBE_TIMEOUT,
                 allowed_origins: Iterable[str] | None = None) -> None:
        if subscribe_timeout <= 0:
            raise ValueError(f"subscribe_timeout must be greater than zero, got {subscribe_timeout}")
        self.app = app
        self.subscribe_timeout = subscribe_timeout
        self.read_only = read_only
        self.title = title
        self.bus = bus
        self.max_pending = max_pending
        self.manager = FlowrraManager(app)
        self.origins = OriginPolicy(allowed_origins)
        self._api = ApiRouter(self.manager)

    # -- HTTP -----------------------------------------------------------------------
    async def handle(self, request: UIRequest, prefix: str) -> UIResponse:
        """Answer one request; never raises (unexpected errors become a logged 500)."""
        try:
            return await self._dispatch(request, normalize_prefix(prefix))
        except ApiError as exc:
            return exc.response()
        except BackendError as exc:  # the broker / result store is down: say so, no 500
            logger.warning("flowrra UI: %s", exc)
            return ApiError(503, str(exc), "backend_unavailable").response()
        except Exception:
            logger.exception("flowrra UI failed on %s %s", request.method, request.path)
            return ApiError(500, "Internal error in the Flowrra dashboard; see the server log",
                            "internal").response()

    async def _dispatch(self, request: UIRequest, prefix: str) -> UIResponse:
        method = request.method.upper()
        path = request.path[1:] if request.path.startswith("/") else request.path
        if path == "api" or path.startswith("api/"):
            if method in _MUTATIONS:
                self._check_mutation(request)
            return await self._api.handle(method, path[4:], request)
        if method not in ("GET", "HEAD"):
            raise ApiError(405, f"{method} is not allowed here; pages and static files are GET only",
                           "method_not_allowed")
        if path.startswith("static/"):
            response = serve_static(path[len("static/"):])
        elif path == "ws":
            response = json_response(error_body(
                "This URL is a WebSocket endpoint: connect with ws:// or wss://. This server "
                "may not support sockets; the dashboard falls back to polling.",
                "upgrade_required", 426), 426)
        else:
            response = await render_page(self, path, prefix)
        if method == "HEAD":
            response.body = b""
        return response

    def _check_mutation(self, request: UIRequest) -> None:
        if self.read_only:
            raise ApiError(403, "This dashboard is read-only: actions are disabled", "read_only")
        reason = self.origins.refusal(request.headers, socket=False)
        if reason is not None:
            raise ApiError(403, reason, "cross_origin")
        if request.body.strip():
            ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise ApiError(415, "Send the request body as JSON with "
                               "'Content-Type: application/json'", "unsupported_media_type")

    def check_socket_origin(self, headers: Mapping[str, str]) -> AuthError | None:
        """The refusal of a WebSocket handshake from a foreign page, or None (CSWSH)."""
        reason = self.origins.refusal(headers, socket=True)
        return None if reason is None else AuthError(403, reason)

    async def authorize(self, hook: AuthHook | None, native_request: Any,
                        path: str = "") -> UIResponse | None:
        """Run an adapter's auth hook; the refusal response, or None to proceed."""
        refusal = await run_auth(hook, native_request)
        return None if refusal is None else self.refusal_response(refusal)

    @staticmethod
    def refusal_response(refusal: AuthError) -> UIResponse:
        """The 401/403 JSON response for a refused request (pages, API and static alike)."""
        code = "unauthorized" if refusal.status == 401 else "forbidden"
        response = json_response(error_body(refusal.message, code, refusal.status), refusal.status)
        response.headers.update(refusal.headers)
        return response

    # -- WebSocket --------------------------------------------------------------------
    def open_stream(self) -> EventStream:
        """A fresh bounded event stream for one socket (not yet opened)."""
        return EventStream(self.bus, self.max_pending)

    async def subscribe(self) -> EventStream | None:
        """An opened stream for one socket, or None if the subscription cannot start.

        Opening waits for the cross-process relay to listen; if the broker is
        unreachable that could take forever, so it is bounded by
        ``subscribe_timeout`` and the adapter refuses the socket (the page polls).
        Adapters call this *before* accepting, so events flow from the moment
        the browser sees the socket open.
        """
        events = self.open_stream()
        try:
            await asyncio.wait_for(events.open(), self.subscribe_timeout)
        except Exception as exc:
            reason = ("the cross-process event relay did not start listening in time (is the "
                      "broker reachable?)" if isinstance(exc, TimeoutError) else repr(exc))
            logger.error("flowrra UI: cannot subscribe a socket to task events (%s); refusing "
                         "it, the dashboard falls back to polling", reason)
            await self._close(events)
            return None
        return events

    async def _close(self, events: EventStream) -> None:
        """Unsubscribe at once; switching a relay off may wait on the broker, but not forever."""
        try:
            await asyncio.wait_for(events.close(), self.subscribe_timeout)
        except Exception as exc:
            logger.warning("flowrra UI: unsubscribed, but the event relay did not switch off "
                           "cleanly: %r", exc)

    async def stream(self, send_text: SendText, receive: ReceiveText,
                     events: EventStream | None = None) -> None:
        """Forward every event to one accepted socket until either side goes away.

        ``events`` is the stream from :meth:`subscribe` (subscribed here if
        omitted; then a failure raises RuntimeError). ``receive`` must return
        the next client message, and return None or raise when the client
        disconnects. The first frame is ``{"type": "hello"}``, sent once the
        subscription is live, so a client knows nothing after it is missed.
        """
        if events is None:
            events = await self.subscribe()
            if events is None:
                raise RuntimeError("cannot subscribe to task events; see the log")
        forward = listen = None
        try:
            await send_text(json.dumps({"type": "hello", "read_only": self.read_only,
                                        "server_time": utcnow().isoformat()}))
            forward = asyncio.ensure_future(self._forward(events, send_text))
            listen = asyncio.ensure_future(self._listen(receive, send_text))
            await asyncio.wait({forward, listen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tasks = [t for t in (forward, listen) if t is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._close(events)

    @staticmethod
    async def _forward(events: EventStream, send_text: SendText) -> None:
        async for frame in events.frames():
            await send_text(frame)

    @staticmethod
    async def _listen(receive: ReceiveText, send_text: SendText) -> None:
        while True:
            message = await receive()
            if message is None:
                return
            if isinstance(message, (bytes, bytearray)):
                message = message.decode("utf-8", "replace")
            if isinstance(message, str) and '"ping"' in message:
                await send_text(json.dumps({"type": "pong"}))


def auth_refusal_close_code(refusal: AuthError) -> int:
    """WebSocket close code for a refused socket: 4401 or 4403 (HTTP status + 4000)."""
    return 4000 + refusal.status
