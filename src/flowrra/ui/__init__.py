"""The Flowrra dashboard: one framework-neutral service plus thin adapters.

* :class:`UIService` — pages, static files, JSON API and the live socket.
* ``flowrra.ui.fastapi.create_router`` — FastAPI / Starlette.
* ``flowrra.ui.flask.create_blueprint`` — Quart (with the socket) and Flask.
* ``flowrra.ui.django.get_urls`` / ``flowrra.ui.django_websocket`` — Django (Channels).
* ``flowrra.ui.standalone.serve`` — ``flowrra ui module:app``.

Adapters import their framework lazily, so importing this package needs none.
"""

from flowrra.ui.http import ApiError, AuthError, AuthHook, UIRequest, UIResponse
from flowrra.ui.service import UIService, normalize_prefix
from flowrra.ui.stream import EventStream

__all__ = [
    "ApiError",
    "AuthError",
    "AuthHook",
    "EventStream",
    "UIRequest",
    "UIResponse",
    "UIService",
    "normalize_prefix",
]
