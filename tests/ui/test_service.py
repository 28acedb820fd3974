"""The framework-neutral service directly: raw paths no HTTP client would send, stores that are down."""

from __future__ import annotations

import pytest

from flowrra import BackendConfig, BrokerConfig, Config, Flowrra
from flowrra.ui import UIRequest, UIService, normalize_prefix
from flowrra.ui.pages import resolve_static
from tests.ui.harness import forget


@pytest.fixture
async def service():
    app = Flowrra()
    await app.start()
    yield UIService(app)
    await app.stop()
    forget(app)


@pytest.mark.parametrize("path", [
    "static/../service.py", "static/../../app.py", "static//etc/passwd", "static/\\..\\api.py",
    "static/./flowrra.js", "static/.hidden", "static/flowrra.js\x00.png", "static/" + "a/" * 150,
    "static/../templates/shell.html", "static/C:/Windows/win.ini", "static/..",
])
async def test_raw_traversal_paths_are_404(service: UIService, path: str) -> None:
    reply = await service.handle(UIRequest("GET", path), "/flowrra")
    assert reply.status == 404 and b"import" not in reply.body


def test_resolve_static_only_returns_files_inside_the_folder() -> None:
    assert resolve_static("flowrra.js") is not None
    assert resolve_static("../http.py") is None
    assert resolve_static("/etc/passwd") is None
    assert resolve_static("") is None


@pytest.mark.parametrize("raw, expected", [("", ""), ("/", ""), ("flowrra", "/flowrra"),
                                           ("/flowrra/", "/flowrra"), (" /a/b/ ", "/a/b")])
def test_normalize_prefix(raw: str, expected: str) -> None:
    assert normalize_prefix(raw) == expected


async def test_root_mount_links(service: UIService) -> None:
    reply = await service.handle(UIRequest("GET", ""), "")
    assert reply.status == 200 and b'href="/tasks"' in reply.body


def test_request_headers_are_case_insensitive() -> None:
    request = UIRequest("GET", "", headers={"Content-Type": "application/json"})
    assert request.header("content-type") == "application/json"
    assert request.header("x-missing", "d") == "d"


async def test_unreachable_stores_give_503_not_500() -> None:
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused
    app = Flowrra(Config(broker=BrokerConfig(down, socket_timeout=0.3),
                         backend=BackendConfig(down, socket_timeout=0.3)))
    service = UIService(app)
    health = await service.handle(UIRequest("GET", "api/health"), "")
    assert health.status == 503
    report = health.json()
    assert report["status"] == "unhealthy" and "unreachable" in report["checks"]["broker"]["error"]
    stats = await service.handle(UIRequest("GET", "api/stats"), "")
    assert stats.status == 503 and stats.json()["code"] == "backend_unavailable"
    assert "unreachable" in stats.json()["error"]
    page = await service.handle(UIRequest("GET", ""), "")
    assert page.status == 200, "pages render without the stores"
    await app.stop()
    forget(app)
