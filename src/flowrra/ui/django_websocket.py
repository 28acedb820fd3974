"""Live task updates for Django over a Channels WebSocket.

Every ``task.update`` event on the Flowrra event bus is forwarded to each
connected browser as a JSON text frame. Wire it into ``asgi.py``::

    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application

    django_asgi = get_asgi_application()          # before importing anything that uses models
    from flowrra.ui.django_websocket import websocket_urlpatterns

    application = ProtocolTypeRouter({
        "http": django_asgi,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    })

and serve it with ``daphne`` or ``uvicorn``. No Channels layer is needed (a
configured one, such as ``channels_redis``, does no harm): events reach this
process through Flowrra's own event bus.

**Where the events come from.** Tasks that run in other processes (``flowrra
worker``) publish their events through the broker (Redis); the web process
relays them into its bus. That relay is set up when the user's
``Flowrra(...)`` object is created, so *the module that defines your Flowrra app
must be imported by the ASGI application* — mounting the dashboard with
``path("flowrra/", include(get_urls(flowrra)))`` in ``urls.py`` does that, since
``get_asgi_application()`` loads the URLconf. Otherwise set
``FLOWRRA_APP = "myproject.tasks:flowrra"`` in settings and the consumer imports
it on the first connection. The relay starts when the first socket subscribes
and stops with the last one; nothing needs a start-up hook.

**Who may connect.** Active staff users by default (``scope["user"]``, which
``AuthMiddlewareStack`` fills in). To change that, set ``FLOWRRA_UI_AUTH`` to a
callable (or its dotted path) taking a request and returning a bool — the same
hook guards the HTTP pages, which pass the ``HttpRequest``, and the socket,
which passes a request-like :class:`~flowrra.ui._django_common.SocketRequest`
(``.user``, ``.session``, ``.COOKIES``, ``.headers``, ``.scope``) — or pass
``auth=`` to :func:`get_websocket_urlpatterns` / ``FlowrraConsumer.as_asgi``.
Rejected handshakes get HTTP 403.

**Memory.** Between the bus and each socket sits a bounded
:class:`~flowrra.ui.stream.EventStream` (latest state per task), so a client
that cannot keep up skips intermediate states instead of growing the server's
memory or slowing the bus.

This module imports without Channels (and before Django settings are
configured): then ``CHANNELS_AVAILABLE`` is False, ``websocket_urlpatterns`` is
empty and creating a ``FlowrraConsumer`` raises ImportError.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from flowrra.events import EventBus
from flowrra.task import utcnow
from flowrra.ui._django_common import (
    AuthHook,
    SocketRequest,
    allowed_origins_from_settings,
    get_setting,
    import_object,
    resolve_auth,
)
from flowrra.ui._send_gate import SendGate, send_gate
from flowrra.ui.http import AuthError, run_auth
from flowrra.ui.origin import OriginPolicy
from flowrra.ui.stream import DEFAULT_MAX_PENDING, EventStream

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNELS_AVAILABLE",
    "FlowrraConsumer",
    "get_websocket_urlpatterns",
    "websocket_urlpatterns",
]

_INSTALL_HINT = ("Django Channels is required for the Flowrra WebSocket consumer: "
                 "pip install channels  (or: pip install 'flowrra[ui-django]')")

#: Django setting: dotted path of the Flowrra app to import on the first connection.
APP_SETTING = "FLOWRRA_APP"
#: Django setting: how many task states may wait for one slow socket.
MAX_PENDING_SETTING = "FLOWRRA_WS_MAX_PENDING"
#: Django setting: seconds to wait for the cross-process relay (Redis) on connect.
SUBSCRIBE_TIMEOUT_SETTING = "FLOWRRA_WS_SUBSCRIBE_TIMEOUT"
DEFAULT_SUBSCRIBE_TIMEOUT = 5.0

try:
    from channels.generic.websocket import AsyncWebsocketConsumer as _ConsumerBase

    CHANNELS_AVAILABLE = True
except ImportError:
    CHANNELS_AVAILABLE = False

    class _ConsumerBase:  # type: ignore[no-redef]
        """Stands in for Channels' consumer so that this module still imports."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(_INSTALL_HINT)

        @classmethod
        def as_asgi(cls, **initkwargs: Any) -> Any:
            raise ImportError(_INSTALL_HINT)


_app_imported = False


def _import_configured_app() -> None:
    """Import ``settings.FLOWRRA_APP`` once, so its relay is registered with the bus."""
    global _app_imported
    if _app_imported:
        return
    path = get_setting(APP_SETTING)
    if path is not None:
        # A failure is not remembered: every connection is refused (and logged)
        # until the setting is fixed, rather than silently showing no remote events.
        app = import_object(path, f"settings.{APP_SETTING}")
        from flowrra.app import Flowrra

        if not isinstance(app, Flowrra):
            raise TypeError(f"settings.{APP_SETTING} = {path!r} names {type(app).__name__}, "
                            f"not a Flowrra app")
    _app_imported = True


class FlowrraConsumer(_ConsumerBase):
    """One browser's live feed of task updates.

    Options (``FlowrraConsumer.as_asgi(**options)``): ``auth`` — a hook
    ``auth(request) -> bool`` (default: ``settings.FLOWRRA_UI_AUTH``, else staff
    users); ``max_pending`` — the per-socket bound (default
    ``settings.FLOWRRA_WS_MAX_PENDING`` or 1000); ``bus`` — the event bus
    (default: the process-wide one); ``read_only`` — echoed in the greeting
    frame, for a dashboard mounted with ``get_urls(..., read_only=True)``;
    ``subscribe_timeout`` — seconds to wait on connect for the cross-process
    relay to listen (default ``settings.FLOWRRA_WS_SUBSCRIBE_TIMEOUT`` or 5);
    past it the socket is refused (close code 1011) and the page polls.

    Wire protocol (shared with the FastAPI and Quart sockets): first
    ``{"type": "hello", "read_only": bool, "server_time": ISO}`` once the
    subscription is live, then one JSON text frame per event, e.g.
    ``{"type": "task.update", "task": {...}}``; a client frame containing
    ``"ping"`` is answered with ``{"type": "pong"}``.
    """

    def __init__(self, *args: Any, auth: AuthHook | str | None = None,
                 max_pending: int | None = None, bus: EventBus | None = None,
                 read_only: bool = False, subscribe_timeout: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._auth = auth
        self._subscribe_timeout_s = subscribe_timeout
        self._read_only = read_only
        self._max_pending = max_pending
        self._bus = bus
        self.stream: EventStream | None = None
        self.forwarder: asyncio.Task[None] | None = None
        self.gate: SendGate | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # A server that shuts down cancels the application without a disconnect
        # message; unsubscribe in every case.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._shutdown()

    async def connect(self) -> None:
        refusal = await self._check_auth()
        if refusal is not None:
            logger.info("Flowrra WebSocket: connection to %s refused (%d %s)",
                        self.scope.get("path"), refusal.status, refusal.message)
            # Closing before accepting answers the handshake with HTTP 403.
            await self.close(code=4000 + refusal.status)
            return
        try:
            _import_configured_app()
            max_pending = self._max_pending or get_setting(MAX_PENDING_SETTING) or DEFAULT_MAX_PENDING
            self.stream = EventStream(self._bus, max_pending=int(max_pending))
            # Subscribe before accepting, so that events (relayed ones included)
            # flow from the moment the browser sees the socket open. If the relay
            # cannot listen (Redis down), refuse rather than hang: the page polls.
            await asyncio.wait_for(self.stream.open(), self._subscribe_timeout())
        except Exception as exc:
            reason = ("the cross-process event relay did not start listening in time (is the "
                      "broker reachable?)" if isinstance(exc, TimeoutError) else repr(exc))
            logger.error("Flowrra WebSocket: cannot subscribe to task events (%s); refusing the "
                         "connection, the dashboard falls back to polling", reason,
                         exc_info=not isinstance(exc, TimeoutError))
            await self._shutdown()
            await self.close(code=1011)
            return
        await self.accept()
        # daphne's send never waits for a slow client; the gate makes it (see _send_gate)
        self.gate = send_gate(self.base_send)
        self.forwarder = asyncio.get_running_loop().create_task(
            self._forward(self.stream, self.gate), name="flowrra-ws-forward")

    def _subscribe_timeout(self) -> float:
        if self._subscribe_timeout_s is not None:
            return self._subscribe_timeout_s
        return float(get_setting(SUBSCRIBE_TIMEOUT_SETTING) or DEFAULT_SUBSCRIBE_TIMEOUT)

    async def _check_auth(self) -> AuthError | None:
        try:
            hook = resolve_auth(self._auth)
        except Exception as exc:  # a misconfigured hook: fail closed, say why in the log
            logger.exception("Flowrra WebSocket: cannot load the auth hook")
            return AuthError(403, f"the auth hook cannot be loaded: {exc}")
        request = SocketRequest(self.scope)
        reason = OriginPolicy(allowed_origins_from_settings()).refusal(request.headers, socket=True)
        if reason is not None:
            return AuthError(403, reason)
        return await run_auth(hook, request)

    async def _forward(self, stream: EventStream, gate: SendGate) -> None:
        """Send the greeting, then every frame of the stream, until closed or the send fails."""
        try:
            # Same wire protocol as the other adapters (UIService.stream): a hello
            # once the subscription is live, then one JSON text frame per event.
            await self.send(text_data=json.dumps({"type": "hello", "read_only": self._read_only,
                                                  "server_time": utcnow().isoformat()}))
            while True:
                await gate.wait()  # while the client is not reading, states coalesce in the stream
                frame = await stream.next_frame()
                if frame is None:
                    return
                await self.send(text_data=frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send; disconnect cleans up
            logger.debug("Flowrra WebSocket: stopped forwarding: %r", exc)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The feed is one-way; only a keep-alive ``{"type": "ping"}`` gets an answer."""
        message = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if '"ping"' in message and self.stream is not None:
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def disconnect(self, code: int) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        stream, self.stream = self.stream, None
        forwarder, self.forwarder = self.forwarder, None
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.detach()
        if stream is not None:
            # Unsubscribing happens at once; only switching the relay off can wait
            # (on a relay still trying to reach Redis), and that must not hold up
            # the end of this connection.
            try:
                await asyncio.wait_for(stream.close(), self._subscribe_timeout())
            except TimeoutError:
                logger.warning("Flowrra WebSocket: unsubscribed, but the cross-process event "
                               "relay did not switch off in time")
        if forwarder is not None and not forwarder.done():
            forwarder.cancel()
            # wait() does not re-raise the forwarder's CancelledError, while a
            # cancellation of this task itself still propagates.
            await asyncio.wait({forwarder})


def get_websocket_urlpatterns(prefix: str = "flowrra/", **options: Any) -> list[Any]:
    """URL patterns for a dashboard mounted at ``prefix`` (the socket is ``<prefix>ws``).

    Use it instead of :data:`websocket_urlpatterns` when the dashboard is not at
    ``flowrra/`` or to pass consumer options (``auth=``, ``max_pending=``).
    Returns an empty list when Channels is not installed.
    """
    if not CHANNELS_AVAILABLE:
        return []
    from django.urls import path

    prefix = prefix.strip("/")
    route = f"{prefix}/ws" if prefix else "ws"
    return [path(route, FlowrraConsumer.as_asgi(**options), name="flowrra-ws")]


#: ``[path('flowrra/ws', FlowrraConsumer.as_asgi())]``, or ``[]`` without Channels.
websocket_urlpatterns: list[Any] = get_websocket_urlpatterns()
