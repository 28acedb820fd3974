"""ASGI entry point: Django for HTTP, the Flowrra consumer for WebSockets.

Run from the repository root (see ../README.md)::

    daphne -b 127.0.0.1 -p 8000 examples.django_project.project.asgi:application
    uvicorn --host 127.0.0.1 --port 8000 examples.django_project.project.asgi:application
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.project.settings")

from django.core.asgi import get_asgi_application

# Set Django up before importing anything that touches models or the URLconf.
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from examples.django_project.project.bootstrap import prepare_database  # noqa: E402
from examples.django_project.project.tasks import ensure_started, flowrra  # noqa: E402

from flowrra.ui.django_websocket import websocket_urlpatterns  # noqa: E402

prepare_database()


async def http(scope, receive, send):  # type: ignore[no-untyped-def]
    # Embedded broker: the web process runs the tasks itself, started lazily
    # because daphne has no start-up hook. With Redis this does nothing.
    await ensure_started()
    await django_http(scope, receive, send)


async def lifespan(scope, receive, send):  # type: ignore[no-untyped-def]
    """Servers that speak ASGI lifespan (uvicorn) get a graceful stop of the embedded worker."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await flowrra.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter({
    "http": http,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    "lifespan": lifespan,
})
