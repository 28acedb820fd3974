"""Same-origin checks for the dashboard's sockets and state-changing requests.

Browsers attach cookies and HTTP auth to cross-site WebSocket handshakes and
form posts, so a page on another origin could otherwise read the live event
stream or press the dashboard's buttons with the visitor's credentials (CSWSH
and CSRF). Browsers always say where a request comes from — ``Origin`` on
handshakes and non-GET requests, ``Sec-Fetch-Site`` on every request of a
modern browser — so the rule is: a request that carries either signal must come
from the dashboard's own origin (the request's ``Host``) or from an origin the
user allowed. A request with neither signal comes from a script or a CLI, not
from a browser page, and is left to the auth hook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, found in headers.items():
        if key.lower() == name:
            return found
    return None


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    """``"Example.com:8000"`` -> ``("example.com", 8000)``; the scheme's port when absent."""
    parsed = urlsplit(f"//{netloc.strip()}")
    try:
        port = parsed.port
    except ValueError:
        return ("", None)
    return ((parsed.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme))


def _normalise(origin: str) -> str:
    """An origin as ``scheme://host:port`` in lower case, or "" if it is not one."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    host, port = _host_port(parts.netloc, parts.scheme)
    return f"{parts.scheme}://{host}:{port}" if host else ""


class OriginPolicy:
    """Which browser origins may open the socket and change anything.

    ``allowed_origins`` lists extra origins such as ``"https://admin.example.com"``
    (the dashboard's own origin is always allowed); ``"*"`` allows any origin,
    which only makes sense behind an auth hook that does not rely on cookies.
    """

    def __init__(self, allowed_origins: Iterable[str] | None = None) -> None:
        origins = [o for o in (allowed_origins or ()) if o]
        self.allow_any = "*" in origins
        self.allowed = frozenset(filter(None, (_normalise(o) for o in origins if o != "*")))
        bad = [o for o in origins if o != "*" and not _normalise(o)]
        if bad:
            raise ValueError(f"allowed_origins must look like 'https://host[:port]', got {bad!r}")

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """True if ``origin`` is the dashboard's own (same host and port) or allowed."""
        if self.allow_any:
            return True
        normal = _normalise(origin)
        if not normal:
            return False  # "null" (sandboxed frames, file://) and garbage
        if normal in self.allowed:
            return True
        if not host:
            return False
        scheme = normal.split("://", 1)[0]
        origin_host, origin_port = _host_port(normal.split("://", 1)[1], scheme)
        return (origin_host, origin_port) == _host_port(host, scheme)

    def refusal(self, headers: Mapping[str, str], *, socket: bool) -> str | None:
        """Why this request must be refused, or None when it may proceed."""
        origin = _header(headers, "origin")
        host = _header(headers, "host")
        if origin is not None:
            if self.origin_allowed(origin, host):
                return None
            what = "WebSocket connection" if socket else "request"
            return (f"Cross-origin {what} refused: Origin {origin!r} is not this dashboard's "
                    "origin; add it to allowed_origins if it should be trusted")
        fetch_site = (_header(headers, "sec-fetch-site") or "").lower()
        if fetch_site and fetch_site not in _SAME_ORIGIN_FETCH and not self.allow_any:
            return (f"Cross-site request refused (Sec-Fetch-Site: {fetch_site}): actions are "
                    "accepted only from the dashboard's own pages")
        return None
