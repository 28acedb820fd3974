"""Choosing brokers and backends by URL; unsupported schemes say what is supported."""

from __future__ import annotations

import pytest

from flowrra import Flowrra
from flowrra.backends import InMemoryBackend, ResultBackend, get_backend
from flowrra.brokers import Broker, InMemoryBroker, get_broker


def test_defaults_are_in_memory() -> None:
    assert isinstance(get_broker(None), InMemoryBroker)
    assert isinstance(get_broker("memory://"), InMemoryBroker)
    assert isinstance(get_backend(None), InMemoryBackend)
    assert isinstance(get_backend("memory://"), InMemoryBackend)
    assert not InMemoryBroker.shared and not InMemoryBroker.durable


def test_instances_pass_through() -> None:
    broker, backend = InMemoryBroker(), InMemoryBackend()
    assert get_broker(broker) is broker and get_backend(backend) is backend
    app = Flowrra(broker=broker, backend=backend)
    assert app.broker is broker and app.backend is backend


def test_backend_options_reach_the_instance() -> None:
    backend = get_backend(None, ttl=30, max_results=7)
    assert isinstance(backend, ResultBackend)
    assert (backend.ttl, backend.max_results) == (30, 7)
    assert isinstance(get_broker(None, visibility_timeout=5.0), Broker)


@pytest.mark.parametrize("factory", [get_broker, get_backend], ids=["broker", "backend"])
@pytest.mark.parametrize("url", ["amqp://guest@localhost//", "kafka://x", "HTTP://host"])
def test_unsupported_scheme_lists_supported_ones(factory, url: str) -> None:
    with pytest.raises(ValueError) as info:
        factory(url)
    message = str(info.value)
    assert "Unsupported" in message and url.split("://")[0].lower() in message
    for scheme in ("redis://", "rediss://", "unix://", "sqlite://"):
        assert scheme in message, (scheme, message)


@pytest.mark.parametrize("factory", [get_broker, get_backend], ids=["broker", "backend"])
def test_not_a_url(factory) -> None:
    with pytest.raises(ValueError, match="not a URL"):
        factory("localhost:6379")


def test_from_urls_rejects_unsupported_scheme() -> None:
    with pytest.raises(ValueError, match="Supported"):
        Flowrra.from_urls(broker="amqp://localhost")
    with pytest.raises(ValueError, match="Supported"):
        Flowrra.from_urls(backend="mongodb://localhost")
