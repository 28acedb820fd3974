"""Fixtures for the Django adapter and Channels consumer tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from tests.conftest import unique
from tests.django.setup_django import configure

configure()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import AsyncClient  # noqa: E402
from django.urls import clear_url_caches, include, path  # noqa: E402

from flowrra import Flowrra  # noqa: E402
from flowrra.events import event_bus  # noqa: E402
from tests.django import urls  # noqa: E402


def _user(*, staff: bool) -> Any:
    model = get_user_model()
    return model.objects.create_user(username=unique("staff" if staff else "viewer"),
                                      password="pw", is_staff=staff)


@pytest.fixture(scope="session")
def staff_user() -> Any:
    return _user(staff=True)


@pytest.fixture(scope="session")
def plain_user() -> Any:
    return _user(staff=False)


@pytest.fixture
async def app() -> AsyncIterator[Flowrra]:
    """An in-process app whose tasks run here; stopped (and its subscribers gone) afterwards."""
    baseline = len(event_bus._subscribers)
    flowrra = Flowrra()
    yield flowrra
    await flowrra.stop()
    assert len(event_bus._subscribers) == baseline, "a test left a subscriber on the event bus"


@pytest.fixture
def mount() -> Iterator[Callable[..., None]]:
    """``mount(prefix, patterns)`` installs URL patterns under ``prefix`` for one test."""

    def install(prefix: str, patterns: list[Any]) -> None:
        urls.urlpatterns.append(path(prefix, include(patterns)))
        clear_url_caches()

    yield install
    urls.urlpatterns.clear()
    clear_url_caches()


@pytest.fixture
async def staff_client(staff_user: Any) -> AsyncClient:
    client = AsyncClient(enforce_csrf_checks=True)
    # AsyncClient.aforce_login() is Django 5.0+; the sync force_login() in a thread works on 4.2 too.
    await sync_to_async(client.force_login)(staff_user)
    return client
