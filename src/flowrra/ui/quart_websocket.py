"""flowrra 0.1.8's ``setup_websocket(app)`` for Quart, kept for code written for it.

Our blueprint (``flowrra.ui.flask.create_blueprint``) already serves the live
socket at ``<url_prefix>/ws`` on Quart, so new code needs nothing from here.
:func:`setup_websocket` makes old code keep working:

* when a Flowrra blueprint already serves ``path`` it does nothing;
* with ``flowrra=`` it registers that app's socket at ``path``;
* otherwise it registers ``path`` now and, per connection, streams the events
  of the Flowrra blueprint registered on this app whose socket is ``path``
  (0.1.8 called it before or after ``register_blueprint``). Until such a
  blueprint exists the handshake is refused with 503.

Either way the socket checks the same ``auth`` hook as the blueprint it
belongs to, so this adds no unauthenticated way in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import quart
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("flowrra.ui.quart_websocket needs Quart: pip install quart") from exc

from flowrra.ui.flask import json_error, quart_socket_view
from flowrra.ui.http import AuthHook
from flowrra.ui.service import UIService

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["setup_websocket"]

_ENDPOINT = "flowrra_setup_websocket"


def _registered(app: Any) -> dict[str, Any]:
    """Sockets that Flowrra blueprints registered on ``app``, by path."""
    return app.extensions.get("flowrra_sockets", {})


def _deferred_view(app: Any, path: str) -> Any:
    """A view that streams the blueprint registered for ``path`` on ``app``."""

    async def socket() -> Any:
        blueprint = _registered(app).get(path)
        if blueprint is None:
            return json_error(quart.Response, 503, "No Flowrra dashboard is registered on "
                               f"this app for {path}: call app.register_blueprint("
                               "create_blueprint(flowrra), url_prefix=...) first")
        return await quart_socket_view(blueprint.service, blueprint.auth)()

    return socket


def setup_websocket(app: quart.Quart, path: str = "/flowrra/ws", flowrra: Flowrra | None = None,
                    *, auth: AuthHook | None = None, read_only: bool = False) -> None:
    """Serve Flowrra's live event socket at ``path`` on the Quart ``app``."""
    if not isinstance(app, quart.Quart):
        raise TypeError(f"setup_websocket() needs a Quart app, not {type(app).__name__}")
    path = "/" + path.strip("/")
    if path in _registered(app):
        return  # the blueprint already serves it
    if flowrra is not None:
        view = quart_socket_view(UIService(flowrra, read_only=read_only), auth)
    else:
        view = _deferred_view(app, path)
    app.add_websocket(path, _ENDPOINT, view)
