"""flowrra.ui.django_websocket must import without Channels, without Django, without settings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from flowrra.ui import django_websocket
from flowrra.ui.django_websocket import (
    CHANNELS_AVAILABLE,
    FlowrraConsumer,
    get_websocket_urlpatterns,
    websocket_urlpatterns,
)


def _run_blocked(blocked: list[str], body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter where importing any of ``blocked`` fails."""
    script = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    script += textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


CHECK_WITHOUT_CHANNELS = """
    import os
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    from flowrra.ui import django_websocket as m
    assert m.CHANNELS_AVAILABLE is False, m.CHANNELS_AVAILABLE
    assert m.websocket_urlpatterns == [], m.websocket_urlpatterns
    assert m.get_websocket_urlpatterns("admin/flowrra/") == []
    for attempt in (lambda: m.FlowrraConsumer(), lambda: m.FlowrraConsumer.as_asgi()):
        try:
            attempt()
        except ImportError as exc:
            assert "pip install channels" in str(exc), str(exc)
        else:
            raise AssertionError("no ImportError without Channels")
    print("ok")
"""


@pytest.mark.parametrize("blocked", [
    ["channels"],
    ["channels", "channels.generic", "channels.generic.websocket"],
    ["channels", "django", "daphne"],  # no Django at all
], ids=["no-channels", "no-channels-submodules", "no-django"])
def test_imports_without_channels(blocked: list[str]) -> None:
    result = _run_blocked(blocked, CHECK_WITHOUT_CHANNELS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_imports_with_channels_before_settings_are_configured() -> None:
    result = _run_blocked([], """
        import os
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        from django.conf import settings
        from flowrra.ui import django_websocket as m
        assert not settings.configured
        assert m.CHANNELS_AVAILABLE is True
        assert len(m.websocket_urlpatterns) == 1
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_channels_available_here() -> None:
    assert CHANNELS_AVAILABLE is True
    assert set(django_websocket.__all__) >= {"FlowrraConsumer", "websocket_urlpatterns",
                                             "CHANNELS_AVAILABLE"}


def test_websocket_urlpatterns_shape() -> None:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from django.urls import URLPattern

    assert isinstance(websocket_urlpatterns, list) and len(websocket_urlpatterns) == 1
    (pattern,) = websocket_urlpatterns
    assert isinstance(pattern, URLPattern)
    assert str(pattern.pattern) == "flowrra/ws"
    assert pattern.callback.consumer_class is FlowrraConsumer
    assert issubclass(FlowrraConsumer, AsyncWebsocketConsumer)


@pytest.mark.parametrize(("prefix", "route"), [
    ("admin/flowrra/", "admin/flowrra/ws"), ("/ops", "ops/ws"), ("", "ws"),
])
def test_websocket_urlpatterns_for_another_prefix(prefix: str, route: str) -> None:
    (pattern,) = get_websocket_urlpatterns(prefix, max_pending=10)
    assert str(pattern.pattern) == route
    assert pattern.callback.consumer_initkwargs == {"max_pending": 10}
