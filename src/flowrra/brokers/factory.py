"""``flowrra.brokers.factory.get_broker``: the import path flowrra 0.1.8 documented."""

from flowrra.brokers import get_broker

__all__ = ["get_broker"]
