"""HTML pages (one shell, filled by the front-end script) and the package's static files.

Pages are plain string substitution over templates shipped in the package: no
template engine, no build step, nothing fetched from a CDN. Static files are
served only from ``flowrra/ui/static``; any path that is absolute, contains a
``..``/``.``/empty segment, a backslash or a NUL, or resolves outside that
folder is a 404.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from flowrra.ui.http import HTML_TYPE, UIResponse

if TYPE_CHECKING:
    from flowrra.ui.service import UIService

HERE = Path(__file__).resolve().parent
STATIC_ROOT = HERE / "static"
TEMPLATE_ROOT = HERE / "templates"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
_PAGES = {
    "": ("dashboard", "Dashboard"),
    "tasks": ("tasks", "Tasks"),
    "schedules": ("schedules", "Schedules"),
}
_TASK_DETAIL = re.compile(r"tasks/(?P<task_id>[^/]+)\Z")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; "
                                "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@cache
def _template(name: str) -> str:
    return (TEMPLATE_ROOT / name).read_text(encoding="utf-8")


def _fill(text: str, values: dict[str, str]) -> str:
    """Replace ``{{ name }}`` with ``values[name]`` (already escaped by the caller)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)


def _asset_version() -> str:
    from flowrra import __version__

    return __version__


async def render_page(service: UIService, path: str, prefix: str) -> UIResponse:
    path = path.rstrip("/") if path != "" else path
    param = ""
    if path in _PAGES:
        page, title = _PAGES[path]
    elif (match := _TASK_DETAIL.match(path)) is not None:
        page, title, param = "task", "Task", match.group("task_id")
    else:
        return _html(404, prefix, service, "notfound", "Not found", "")
    return _html(200, prefix, service, page, title, param)


def _html(status: int, prefix: str, service: UIService, page: str, title: str,
          param: str) -> UIResponse:
    config = {"prefix": prefix, "page": page, "param": param, "readOnly": service.read_only,
              "pollInterval": 15000, "version": _asset_version()}
    values = {
        "prefix": html.escape(prefix, quote=True),
        "page": page,
        "title": html.escape(f"{title} · {service.title}"),
        "brand": html.escape(service.title),
        "param": html.escape(param, quote=True),
        "version": html.escape(_asset_version()),
        "read_only": "true" if service.read_only else "false",
        "config": html.escape(json.dumps(config), quote=True),
        "nav_dashboard": "page" if page == "dashboard" else "false",
        "nav_tasks": "page" if page in ("tasks", "task") else "false",
        "nav_schedules": "page" if page == "schedules" else "false",
    }
    values["content"] = _fill(_template(f"{page}.html"), values)
    body = _fill(_template("shell.html"), values).encode("utf-8")
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = "no-store"
    return UIResponse(status, body, HTML_TYPE, headers)


def resolve_static(rel: str) -> Path | None:
    """The file under :data:`STATIC_ROOT` named by ``rel``, or None if it is not one."""
    if not rel or len(rel) > 200 or "\\" in rel or "\x00" in rel or ":" in rel:
        return None
    parts = rel.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    root = STATIC_ROOT
    try:
        candidate = root.joinpath(*parts).resolve()
    except (OSError, ValueError):
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def serve_static(rel: str) -> UIResponse:
    path = resolve_static(rel)
    if path is None:
        return UIResponse(404, b"Not found", "text/plain; charset=utf-8",
                          {"X-Content-Type-Options": "nosniff"})
    ctype = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"
    return UIResponse(200, path.read_bytes(), ctype,
                      {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
