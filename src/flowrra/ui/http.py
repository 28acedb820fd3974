"""Framework-neutral request/response types shared by every web adapter.

Adapters (FastAPI, Flask/Quart, Django) translate their native request into a
:class:`UIRequest`, call :meth:`flowrra.ui.service.UIService.handle`, and turn
the :class:`UIResponse` back into a native response. Keeping the types this
small is what keeps the adapters thin and the behaviour identical everywhere.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "ApiError",
    "AuthError",
    "AuthHook",
    "UIRequest",
    "UIResponse",
    "auth_outcome",
    "error_body",
    "json_response",
    "mount_prefix",
    "run_auth",
]

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass(slots=True)
class UIRequest:
    """One HTTP request, already stripped of the mount prefix.

    ``path`` is percent-decoded and relative to the prefix, without a leading
    slash: ``""`` is the dashboard, ``"api/stats"`` the stats endpoint.
    ``headers`` keys are matched case-insensitively.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default


@dataclass(slots=True)
class UIResponse:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """Decode a JSON body (handy in tests and in adapters that re-wrap JSON)."""
        return json.loads(self.body)


class ApiError(Exception):
    """An expected failure that becomes a JSON error response with ``status``."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _DEFAULT_CODES.get(status, "error")

    def response(self) -> UIResponse:
        return json_response(error_body(self.message, self.code, self.status), self.status)


class AuthError(Exception):
    """Raised by an auth hook to refuse a request with a specific status.

    Returning ``False`` from a hook refuses with 403; raise ``AuthError(401, ...)``
    (optionally with ``headers={"WWW-Authenticate": ...}``) for "please log in".
    """

    def __init__(self, status: int = 401, message: str = "Authentication required",
                 headers: Mapping[str, str] | None = None) -> None:
        if status not in (401, 403):
            raise ValueError(f"AuthError status must be 401 or 403, got {status}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


#: ``auth(native_request) -> bool`` (sync or async); may raise :class:`AuthError`.
AuthHook = Callable[[Any], "bool | Awaitable[bool]"]

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    503: "unavailable",
}


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def error_body(message: str, code: str, status: int) -> dict[str, Any]:
    """The one JSON error shape: ``error`` (ours), ``detail`` (FastAPI-style), ``code``, ``status``."""
    return {"error": message, "detail": message, "code": code, "status": status}


def json_response(data: Any, status: int = 200) -> UIResponse:
    body = json.dumps(data, default=_default, ensure_ascii=False).encode("utf-8")
    return UIResponse(status, body, JSON_TYPE, {"Cache-Control": "no-store"})


def auth_outcome(allowed: Any, *, failed: bool = False) -> AuthError | None:
    """Turn an auth hook's return value into a refusal (or None to proceed)."""
    if failed:
        return AuthError(403, "Forbidden: the auth hook failed")
    return None if allowed else AuthError(403, "Forbidden")


async def run_auth(hook: AuthHook | None, native_request: Any) -> AuthError | None:
    """Run ``hook`` and return the refusal (or None when the request may proceed).

    A hook that raises anything other than :class:`AuthError` refuses with 403
    rather than leaking a 500: a broken auth hook must fail closed.
    """
    if hook is None:
        return None
    try:
        allowed = hook(native_request)
        if inspect.isawaitable(allowed):
            allowed = await allowed
    except AuthError as exc:
        return exc
    except Exception as exc:  # fail closed, and say why in the log
        logger.exception("flowrra UI auth hook failed: %s", exc)
        return auth_outcome(None, failed=True)
    return auth_outcome(allowed)


def mount_prefix(full_path: str, tail: str) -> str:
    """The part of ``full_path`` before ``tail`` (the mount point, no trailing slash)."""
    if tail and full_path.endswith(tail):
        full_path = full_path[: len(full_path) - len(tail)]
    return full_path.rstrip("/")
