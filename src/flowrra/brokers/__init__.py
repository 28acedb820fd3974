"""Brokers: where queued tasks wait. ``get_broker(url)`` picks one by URL scheme."""

from __future__ import annotations

from typing import Any

from flowrra.brokers.base import Broker, DeadLetter
from flowrra.brokers.memory import InMemoryBroker
from flowrra.urls import load_by_scheme

__all__ = ["BaseBroker", "Broker", "DeadLetter", "InMemoryBroker", "RedisBroker", "get_broker"]

#: Name used by flowrra 0.1 for the base class.
BaseBroker = Broker

#: scheme -> (module, class, extra to install)
BROKERS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("flowrra.brokers.memory", "InMemoryBroker", None),
    "redis": ("flowrra.brokers.redis", "RedisBroker", "redis"),
    "rediss": ("flowrra.brokers.redis", "RedisBroker", "redis"),
    "unix": ("flowrra.brokers.redis", "RedisBroker", "redis"),
    "sqlite": ("flowrra.brokers.sqlite", "SQLiteBroker", None),
}


def get_broker(url_or_instance: str | Broker | None = None, **options: Any) -> Broker:
    """Return a broker for a URL (``memory://``, ``redis://``, ``sqlite:///path``) or instance."""
    if isinstance(url_or_instance, Broker):
        return url_or_instance
    if url_or_instance is None:
        return InMemoryBroker(**options)
    return load_by_scheme("broker", url_or_instance, BROKERS, options)


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":
        from flowrra.brokers.redis import RedisBroker

        return RedisBroker
    raise AttributeError(name)
