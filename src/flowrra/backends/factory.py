"""``flowrra.backends.factory.get_backend``: the import path flowrra 0.1.8 documented."""

from flowrra.backends import get_backend

__all__ = ["get_backend"]
