"""The same-origin rule shared by every adapter's socket and actions (issue 10, item 1)."""

from __future__ import annotations

import pytest

from flowrra.ui.origin import OriginPolicy


@pytest.mark.parametrize(("origin", "host"), [
    ("http://127.0.0.1:8201", "127.0.0.1:8201"),
    ("http://LOCALHOST:8000", "localhost:8000"),
    ("https://example.com", "example.com"),
    ("https://example.com:443", "example.com"),
    ("http://example.com", "example.com:80"),
])
def test_own_origin_is_allowed(origin: str, host: str) -> None:
    assert OriginPolicy().refusal({"Origin": origin, "Host": host}, socket=True) is None


@pytest.mark.parametrize(("origin", "host"), [
    ("http://evil.example", "127.0.0.1:8201"),
    ("http://127.0.0.1:8202", "127.0.0.1:8201"),       # a sibling origin: another port
    ("http://sub.example.com", "example.com"),           # a sibling origin: a subdomain
    ("https://example.com", "example.com:80"),           # another scheme's port
    ("null", "127.0.0.1:8201"),
    ("http://127.0.0.1:8201", None),
])
def test_other_origins_are_refused(origin: str, host: str | None) -> None:
    headers = {"origin": origin} | ({"host": host} if host else {})
    reason = OriginPolicy().refusal(headers, socket=True)
    assert reason is not None and "allowed_origins" in reason


def test_allow_list_and_wildcard() -> None:
    policy = OriginPolicy(["https://admin.example.com"])
    assert policy.refusal({"origin": "https://admin.example.com", "host": "x:1"}, socket=True) is None
    assert policy.refusal({"origin": "https://other.example.com", "host": "x:1"}, socket=True)
    assert OriginPolicy(["*"]).refusal({"origin": "http://any", "host": "x"}, socket=True) is None


def test_bad_allow_list_entry_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="allowed_origins"):
        OriginPolicy(["admin.example.com"])


@pytest.mark.parametrize(("site", "refused"), [
    ("same-origin", False), ("none", False), ("same-site", True), ("cross-site", True)])
def test_fetch_metadata_without_origin(site: str, refused: bool) -> None:
    reason = OriginPolicy().refusal({"Sec-Fetch-Site": site, "Host": "h"}, socket=False)
    assert (reason is not None) is refused


def test_no_browser_signal_is_left_to_the_auth_hook() -> None:
    assert OriginPolicy().refusal({"host": "127.0.0.1:8000"}, socket=False) is None
