"""Cross-process event transports (the in-process default reaches no other process)."""

from flowrra.transports.base import EventTransport, LocalTransport, TransportRelay

__all__ = ["EventTransport", "LocalTransport", "TransportRelay"]
