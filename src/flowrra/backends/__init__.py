"""Result backends: where task records live. ``get_backend(url)`` picks one by URL scheme."""

from __future__ import annotations

from typing import Any

from flowrra.backends.base import ResultBackend
from flowrra.backends.memory import InMemoryBackend
from flowrra.urls import load_by_scheme

__all__ = ["BaseResultBackend", "InMemoryBackend", "RedisBackend", "ResultBackend", "get_backend"]

#: Name used by flowrra 0.1 for the base class.
BaseResultBackend = ResultBackend

BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("flowrra.backends.memory", "InMemoryBackend", None),
    "redis": ("flowrra.backends.redis", "RedisBackend", "redis"),
    "rediss": ("flowrra.backends.redis", "RedisBackend", "redis"),
    "unix": ("flowrra.backends.redis", "RedisBackend", "redis"),
    "sqlite": ("flowrra.backends.sqlite", "SQLiteBackend", None),
}


def get_backend(url_or_instance: str | ResultBackend | None = None, **options: Any) -> ResultBackend:
    """Return a backend for a URL (``redis://``, ``rediss://``, ``unix://``, ``sqlite:///``)."""
    if isinstance(url_or_instance, ResultBackend):
        return url_or_instance
    if url_or_instance is None:
        return InMemoryBackend(**options)
    return load_by_scheme("backend", url_or_instance, BACKENDS, options)


def __getattr__(name: str) -> Any:
    if name == "RedisBackend":
        from flowrra.backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(name)
