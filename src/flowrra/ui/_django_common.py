"""Pieces shared by the Django HTTP adapter and the Channels consumer.

Django is imported lazily inside the functions, never at module level, so that
:mod:`flowrra.ui.django_websocket` (which uses this module) keeps importing on a
machine without Django or Channels, and before settings are configured.

One auth hook can guard pages, API and socket alike: the HTTP views call it with
the ``HttpRequest`` and the consumer with a :class:`SocketRequest`, which offers
the same ``user`` / ``auser()`` / ``session`` / ``COOKIES`` / ``headers``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger("flowrra.ui.django")

#: ``hook(request) -> bool`` (or an awaitable of bool); it may raise
#: :class:`flowrra.ui.AuthError` (401/403). Sync hooks run in a thread.
AuthHook = Callable[[Any], "bool | Awaitable[bool]"]

#: Django setting naming the hook used when ``auth=`` is not passed explicitly.
AUTH_SETTING = "FLOWRRA_UI_AUTH"

_warned: set[str] = set()


def warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def get_setting(name: str, default: Any = None) -> Any:
    """A Django setting, or ``default`` when Django is missing or not configured."""
    try:
        from django.conf import settings
    except ImportError:
        return default
    if not settings.configured:
        return default
    return getattr(settings, name, default)


#: Django setting listing other browser origins trusted to open the socket and act.
ALLOWED_ORIGINS_SETTING = "FLOWRRA_UI_ALLOWED_ORIGINS"


def allowed_origins_from_settings(explicit: Sequence[str] | None = None) -> list[str]:
    """Origins trusted besides the dashboard's own: ``explicit``, the Flowrra setting,
    and Django's ``CSRF_TRUSTED_ORIGINS`` (origins Django already trusts to post)."""
    found = list(explicit or ()) + list(get_setting(ALLOWED_ORIGINS_SETTING) or ())
    # Django's wildcard entries (https://*.example.com) match no origin here: sockets
    # from subdomains need an explicit FLOWRRA_UI_ALLOWED_ORIGINS entry.
    return found + [o for o in get_setting("CSRF_TRUSTED_ORIGINS") or () if "*" not in o]


def import_object(path: str, what: str) -> Any:
    """Import ``"package.module:attr"`` or ``"package.module.attr"``."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{what} must be a dotted path such as 'myproject.tasks:flowrra', got {path!r}")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{what} must look like 'package.module:attribute', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"{what}: cannot import module {module_name!r} (from {path!r}): {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{what}: module {module_name!r} has no attribute {attr!r} "
                          f"(from {path!r})") from None


def resolve_auth(explicit: AuthHook | str | None) -> AuthHook:
    """The hook to use: the explicit one, else ``settings.FLOWRRA_UI_AUTH``, else staff-only.

    The result is always an async callable, ready for :func:`flowrra.ui.http.run_auth`.
    """
    hook: Any = explicit if explicit is not None else get_setting(AUTH_SETTING)
    if hook is None:
        return staff_only
    if isinstance(hook, str):
        hook = import_object(hook, f"settings.{AUTH_SETTING}" if explicit is None else "auth")
    if not callable(hook):
        raise TypeError(f"the Flowrra auth hook must be a callable taking the request and returning "
                        f"a bool, got {hook!r}")
    return in_thread_if_sync(hook)


def in_thread_if_sync(hook: AuthHook) -> AuthHook:
    """Sync hooks run in a worker thread (``sync_to_async``) so they may use the ORM.

    Calling ``request.user.is_staff`` directly on the event loop would raise
    Django's SynchronousOnlyOperation; exceptions (``AuthError`` included) pass through.
    """
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
            getattr(hook, "__call__", None)):  # noqa: B004 - async callable objects
        return hook

    async def run(request: Any) -> Any:
        from asgiref.sync import sync_to_async

        result = await sync_to_async(hook)(request)
        return await result if inspect.isawaitable(result) else result

    run.__qualname__ = run.__name__ = getattr(hook, "__name__", "auth_hook")
    return run


async def current_user(request: Any) -> Any:
    """The request's user without touching the ORM from the event loop, or None."""
    auser = getattr(request, "auser", None)
    if auser is not None:
        return await auser()
    if not hasattr(request, "user"):
        return None
    from asgiref.sync import sync_to_async

    def load() -> Any:
        user = request.user
        getattr(user, "is_staff", None)  # evaluates a lazy user in this worker thread
        return user

    return await sync_to_async(load)()


async def staff_only(request: Any) -> bool:
    """The default hook: active staff users only (the Django admin's rule).

    Anonymous users get 401 ("log in"), which the page views turn into a redirect
    to ``settings.LOGIN_URL``; logged-in users who are not staff get 403.
    """
    from flowrra.ui.http import AuthError

    user = await current_user(request)
    if user is None:
        warn_once("no-user", "Flowrra dashboard: the request has no user, so the default staff-only "
                  "check denies it. Enable django.contrib.auth's AuthenticationMiddleware (HTTP) "
                  "or wrap the websocket router in channels.auth.AuthMiddlewareStack, or pass auth=.")
        return False
    if not getattr(user, "is_authenticated", False):
        raise AuthError(401, "Log in as a staff user to see the Flowrra dashboard")
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


class SocketRequest:
    """What an auth hook sees for a WebSocket handshake: the request-like parts of the scope."""

    method = "GET"

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.path: str = scope.get("path", "")
        self.headers: dict[str, str] = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        self.COOKIES: dict[str, str] = dict(scope.get("cookies") or {})
        self.session: Any = scope.get("session")

    @property
    def user(self) -> Any:
        """``scope["user"]`` as set by ``AuthMiddlewareStack``; None without it."""
        try:
            user = self.scope.get("user")
            if user is not None:
                getattr(user, "is_staff", None)  # an unresolved lazy user raises here
            return user
        except ValueError:
            return None

    async def auser(self) -> Any:
        return self.user
