"""Django adapter: ``path("flowrra/", include(get_urls(flowrra)))``.

One catch-all async view forwards every request under the mount point to the
framework-neutral :class:`~flowrra.ui.service.UIService`, which serves the pages,
the package's own static files and the JSON API. Nothing else is needed: no
``INSTALLED_APPS`` entry, no template settings, no ``collectstatic``.

Serve the project under ASGI (daphne or uvicorn) — that is also what the live
socket of :mod:`flowrra.ui.django_websocket` needs.

Security:

* **Who may see it** — active staff users by default (anonymous visitors of a
  page are redirected to ``settings.LOGIN_URL``; the API answers 401/403 JSON).
  Pass ``auth=hook`` (``hook(request) -> bool``, sync or async, may raise
  :class:`flowrra.ui.AuthError`) or set ``settings.FLOWRRA_UI_AUTH`` to the hook
  or its dotted path; the setting also guards the socket.
* **CSRF** — every POST/PUT/PATCH/DELETE is checked with Django's own
  ``CsrfViewMiddleware`` rules, whether or not the project enables that
  middleware. The pages set the ``csrftoken`` cookie and the front end sends it
  back in the ``X-CSRFToken`` header.
* ``read_only=True`` disables every action (403) and hides the buttons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

try:
    from asgiref.sync import sync_to_async
    from django.core.exceptions import RequestDataTooBig
    from django.http import HttpRequest, HttpResponse
    from django.middleware.csrf import CsrfViewMiddleware, get_token
    from django.urls import URLPattern, re_path
except ImportError as exc:
    raise ImportError(
        "flowrra.ui.django needs Django: pip install 'flowrra[ui-django]'"
    ) from exc

from flowrra.ui._django_common import (
    AuthHook,
    allowed_origins_from_settings,
    get_setting,
    resolve_auth,
    staff_only,
)
from flowrra.ui.http import UIRequest, UIResponse, error_body, json_response
from flowrra.ui.legacy import LegacyAdapter
from flowrra.ui.service import UIService

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["DjangoAdapter", "get_urls"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF rules, answering a failure with the dashboard's JSON error shape."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        header = get_setting("CSRF_HEADER_NAME", "HTTP_X_CSRFTOKEN")
        header = "X-CSRFToken" if header == "HTTP_X_CSRFTOKEN" else header
        cookie = get_setting("CSRF_COOKIE_NAME", "csrftoken")
        return _native(json_response(error_body(
            f"CSRF verification failed: {reason.rstrip('.')}. Send the value of the {cookie!r} "
            f"cookie in the {header} header (the dashboard pages set that cookie).",
            "csrf_failed", 403), 403))


_csrf = _CsrfCheck(lambda request: HttpResponse())


def _csrf_rejection(request: HttpRequest) -> HttpResponse | None:
    # Runs in a worker thread: with CSRF_USE_SESSIONS the token lives in the session (ORM).
    _csrf.process_request(request)
    return _csrf.process_view(request, None, (), {})


def _set_csrf_cookie(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Give the page's script a ``csrftoken`` cookie even if the project has no CSRF middleware.

    An existing valid cookie is kept (read first), so open tabs keep working.
    """
    if "CSRF_COOKIE" not in request.META:
        _csrf.process_request(request)
    get_token(request)
    return _csrf.process_response(request, response)


def _native(response: UIResponse) -> HttpResponse:
    native = HttpResponse(response.body, status=response.status, content_type=response.content_type)
    for name, value in response.headers.items():
        native[name] = value
    return native


def _ui_request(request: HttpRequest, subpath: str) -> UIRequest:
    return UIRequest(
        method=request.method or "GET",
        path=subpath,
        query={key: request.GET.get(key, "") for key in request.GET},
        headers=dict(request.headers),
        body=request.body,
    )


def _mount_prefix(request: HttpRequest, subpath: str) -> str:
    full = request.path
    return full[: len(full) - len(subpath)] if subpath and full.endswith(subpath) else full


def _is_page(method: str, subpath: str) -> bool:
    return method in ("GET", "HEAD") and not subpath.startswith(("api/", "static/")) and subpath != "api"


def _login_redirect(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth.views import redirect_to_login

    return redirect_to_login(request.get_full_path())


def get_urls(flowrra: Flowrra, *, auth: AuthHook | str | None = None,
             read_only: bool = False,
             allowed_origins: Sequence[str] | None = None) -> list[URLPattern]:
    """URL patterns for ``path("flowrra/", include(get_urls(flowrra)))``.

    A single catch-all route, so no dashboard route can shadow another (or one
    of yours). ``auth`` overrides ``settings.FLOWRRA_UI_AUTH`` and the staff-only
    default; ``read_only=True`` disables every action.
    """
    service = UIService(flowrra, read_only=read_only,
                        allowed_origins=allowed_origins_from_settings(allowed_origins))
    # An explicit hook is checked now, so a typo fails at start-up; the setting is
    # read per request (it may change in tests, and urls.py can load before it).
    explicit = resolve_auth(auth) if auth is not None else None

    async def flowrra_ui(request: HttpRequest, subpath: str = "") -> HttpResponse:
        method = (request.method or "GET").upper()
        hook = explicit or resolve_auth(None)
        refusal = await service.authorize(hook, request, subpath)
        if refusal is not None:
            if refusal.status == 401 and hook is staff_only and _is_page(method, subpath):
                return _login_redirect(request)
            return _native(refusal)
        try:
            # Read the body before the CSRF check: checking a form post parses
            # request.POST, which would otherwise consume the body stream.
            ui_request = _ui_request(request, subpath)
        except RequestDataTooBig:
            return _native(json_response(error_body(
                "Request body is larger than settings.DATA_UPLOAD_MAX_MEMORY_SIZE",
                "too_large", 413), 413))
        if method not in _SAFE_METHODS:
            rejection = await sync_to_async(_csrf_rejection)(request)
            if rejection is not None:
                return rejection
        response = _native(await service.handle(ui_request, _mount_prefix(request, subpath)))
        if response.get("Content-Type", "").startswith("text/html"):
            response = await sync_to_async(_set_csrf_cookie)(request, response)
        return response

    # The CSRF check above applies Django's own rules; exempting the view from the
    # project's middleware only makes a failure answer in the API's JSON shape.
    flowrra_ui.csrf_exempt = True  # type: ignore[attr-defined]
    flowrra_ui.flowrra_service = service  # type: ignore[attr-defined]
    return [re_path(r"^(?P<subpath>.*)\Z", flowrra_ui, name="flowrra-ui")]


class DjangoAdapter(LegacyAdapter["list[URLPattern]"]):
    """0.1.8's ``DjangoAdapter(...).get_routes()``: ``get_urls(flowrra, **options)``."""

    factory = staticmethod(get_urls)
    get_urls = LegacyAdapter.get_routes
