"""Flask and Quart adapter: ``app.register_blueprint(create_blueprint(flowrra), url_prefix="/flowrra")``.

The same object registers on either framework and picks its mode when
registered: on **Quart** the views are async and ``<prefix>/ws`` streams events
live; on plain **Flask** the pages and JSON API work but there is no socket
(the browser falls back to polling every 15 s).

Flask views are synchronous, so Flowrra's coroutines run on one private event
loop thread (or on ``loop=`` — the loop your Flowrra app runs on, if it runs in
this process). With plain Flask, prefer a shared broker (Redis) and separate
``flowrra worker`` processes.

``auth(request)`` receives ``flask.request`` / ``quart.request`` (``quart.websocket``
for the socket): return False for 403 or raise :class:`flowrra.ui.AuthError`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

try:
    import flask
except ImportError:  # Quart alone is enough
    flask = None  # type: ignore[assignment]
try:
    import quart
except ImportError:  # Flask alone is enough
    quart = None  # type: ignore[assignment]

if flask is None and quart is None:
    raise ImportError("flowrra.ui.flask needs Flask or Quart: pip install 'flowrra[ui-flask]'")

from flowrra.ui.http import (
    ApiError,
    AuthError,
    AuthHook,
    UIRequest,
    UIResponse,
    auth_outcome,
    mount_prefix,
    run_auth,
)
from flowrra.ui.legacy import LegacyAdapter
from flowrra.ui.service import UIService

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["FlaskAdapter", "FlowrraBlueprint", "create_blueprint", "quart_socket_view"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class _LoopThread:
    """Runs coroutines for synchronous Flask views on one long-lived event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="flowrra-ui-loop",
                                          daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def _is_quart(app: Any) -> bool:
    return quart is not None and isinstance(app, quart.Quart)


class FlowrraBlueprint:
    """Registers as a Quart or a Flask blueprint, whichever app it is given."""

    def __init__(self, service: UIService, auth: AuthHook | None, name: str,
                 loop: asyncio.AbstractEventLoop | None) -> None:
        self.service = service
        self.auth = auth
        self.name = name
        self._portal = _LoopThread(loop)

    def register(self, app: Any, options: dict[str, Any]) -> None:
        """Called by ``app.register_blueprint(self, ...)``."""
        if _is_quart(app):
            blueprint = self._quart_blueprint()
        elif flask is not None and isinstance(app, flask.Flask):
            blueprint = self._flask_blueprint()
        else:
            raise TypeError(f"create_blueprint() output can be registered on a Flask or Quart "
                            f"app, not on {type(app).__name__}")
        blueprint.register(app, options)
        if _is_quart(app):  # lets flowrra.ui.quart_websocket find the socket it serves
            path = (options.get("url_prefix") or "").rstrip("/") + "/ws"
            app.extensions.setdefault("flowrra_sockets", {})[path] = self

    # -- Quart ----------------------------------------------------------------------------
    def _quart_blueprint(self) -> Any:
        bp = quart.Blueprint(self.name, __name__)
        service, auth = self.service, self.auth

        async def view(path: str = "") -> Any:
            req = quart.request
            refusal = await service.authorize(auth, req, path)
            if refusal is None:
                prefix = mount_prefix(req.root_path + req.path, path)
                body = await req.get_data(as_text=False)
                ui = UIRequest(req.method, path, _query(req.args), dict(req.headers), body)
                refusal = await service.handle(ui, prefix)
            return _to_native(quart.Response, refusal)

        bp.add_websocket("/ws", "flowrra_socket", quart_socket_view(service, auth))
        _add_rules(bp, view)
        return bp

    # -- Flask ----------------------------------------------------------------------------
    def _flask_blueprint(self) -> Any:
        bp = flask.Blueprint(self.name, __name__)
        service, auth, portal = self.service, self.auth, self._portal

        def view(path: str = "") -> Any:
            req = flask.request
            refusal = self._flask_auth(req)
            if refusal is None:
                prefix = mount_prefix(req.root_path + req.path, path)
                ui = UIRequest(req.method, path, _query(req.args), dict(req.headers),
                               req.get_data(cache=False))
                refusal = portal.run(service.handle(ui, prefix))
            return _to_native(flask.Response, refusal)

        del auth
        _add_rules(bp, view)
        return bp

    def _flask_auth(self, req: Any) -> UIResponse | None:
        if self.auth is None:
            return None
        try:
            allowed = self.auth(req)
            if inspect.isawaitable(allowed):
                allowed = self._portal.run(_awaited(allowed))
        except AuthError as exc:
            outcome: AuthError | None = exc
        except Exception:
            outcome = auth_outcome(None, failed=True)
        else:
            outcome = auth_outcome(allowed)
        return None if outcome is None else self.service.refusal_response(outcome)


def quart_socket_view(service: UIService, auth: AuthHook | None) -> Any:
    """The Quart websocket view streaming ``service``'s events (auth checked first)."""

    async def socket() -> Any:
        ws = quart.websocket
        refusal = service.check_socket_origin(ws.headers) or await run_auth(auth, ws)
        if refusal is not None:
            return json_error(quart.Response, refusal.status, refusal.message,
                               refusal.headers)
        events = await service.subscribe()
        if events is None:  # the relay cannot listen (broker down): refuse, the page polls
            return json_error(quart.Response, 503, "Live updates are unavailable: cannot "
                               "subscribe to task events (is the broker reachable?)")
        await ws.accept()
        await service.stream(ws.send, ws.receive, events)
        return None

    return socket


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _add_rules(bp: Any, view: Any) -> None:
    bp.add_url_rule("/", "flowrra_ui", view, methods=_METHODS, defaults={"path": ""})
    bp.add_url_rule("/<path:path>", "flowrra_ui_path", view, methods=_METHODS)


def _query(args: Any) -> dict[str, str]:
    return {key: args.get(key) for key in args}


def _to_native(response_cls: Any, response: UIResponse) -> Any:
    return response_cls(response.body, status=response.status, headers=response.headers,
                        content_type=response.content_type)


def json_error(response_cls: Any, status: int, message: str,
                headers: dict[str, str] | None = None) -> Any:
    """A native JSON error in the one shape every adapter answers with."""
    response = ApiError(status, message).response()
    response.headers.update(headers or {})
    return _to_native(response_cls, response)


def create_blueprint(flowrra: Flowrra, *, auth: AuthHook | None = None, read_only: bool = False,
                     name: str = "flowrra", loop: asyncio.AbstractEventLoop | None = None,
                     service: UIService | None = None,
                     allowed_origins: Sequence[str] | None = None) -> FlowrraBlueprint:
    """The dashboard as a blueprint for Flask or Quart (with the socket on Quart).

    ``allowed_origins``: other browser origins trusted to open the socket and act.
    """
    service = service or UIService(flowrra, read_only=read_only, allowed_origins=allowed_origins)
    return FlowrraBlueprint(service, auth, name, loop)


class FlaskAdapter(LegacyAdapter[FlowrraBlueprint]):
    """0.1.8's ``FlaskAdapter(...).get_routes()``: ``create_blueprint(flowrra, **options)``."""

    factory = staticmethod(create_blueprint)
    get_blueprint = LegacyAdapter.get_routes
