"""Django harness for the shared UI suites: ``get_urls`` mounted at ``/flowrra/``.

The client behaves like the dashboard's own front end: it is logged in as a
staff user (Django's default guard) unless the suite passes its own ``auth``
hook, and it sends the ``csrftoken`` cookie back in ``X-CSRFToken`` on every
mutation — Django's CSRF check is enforced (the project has no CSRF
middleware; the adapter checks by itself). The CSRF refusals themselves are
tested in ``tests/django``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from tests.conftest import unique
from tests.django.setup_django import configure
from tests.ui.harness import PREFIX, Harness, Reply, UIOptions, build_app, register, start_app

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# Configure at import (collection time, no event loop running): migrate is sync ORM work.
with contextlib.suppress(ImportError):
    configure()


async def _staff_client() -> Any:
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient

    user = await sync_to_async(get_user_model().objects.create_user)(
        username=unique("ui-staff"), password="pw", is_staff=True)
    client = AsyncClient(enforce_csrf_checks=True)
    await sync_to_async(client.force_login)(user)  # aforce_login() is Django 5.0+
    return client


@register("django")
@contextlib.asynccontextmanager
async def django_harness(options: UIOptions) -> AsyncIterator[Harness]:
    from django.test import AsyncClient
    from django.urls import clear_url_caches, include, path
    from django.utils.crypto import get_random_string

    from flowrra.ui.django import get_urls
    from tests.django import urls

    app = build_app()
    await start_app(app, options)
    mounted = path(PREFIX.strip("/") + "/",
                   include(get_urls(app, auth=options.auth, read_only=options.read_only)))
    urls.urlpatterns.append(mounted)
    clear_url_caches()
    client = await _staff_client() if options.auth is None else AsyncClient(enforce_csrf_checks=True)
    csrf_token = get_random_string(32)
    client.cookies["csrftoken"] = csrf_token

    async def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        headers = dict(headers)
        content_type = "application/octet-stream"
        for name in list(headers):
            if name.lower() == "content-type":
                content_type = headers.pop(name)
        if method.upper() in _UNSAFE:
            headers.setdefault("X-CSRFToken", csrf_token)
        r = await client.generic(method, url, body, content_type=content_type, headers=headers)
        return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    try:
        yield Harness("django", app, send, extra={"client": client})
    finally:
        urls.urlpatterns.remove(mounted)
        clear_url_caches()
        await app.stop()
