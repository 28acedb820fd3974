"""Back-pressure for ASGI servers whose WebSocket ``send`` never waits (daphne).

ASGI gives an application no way to see that a client stopped reading.
uvicorn and hypercorn make ``send`` wait while the socket's buffer is full, so
the bounded :class:`~flowrra.ui.stream.EventStream` in front of ``send`` bounds
the server's memory. Daphne's ``send`` returns at once and Twisted buffers every
frame, so a client that never reads grew the server without limit (+69 MB of RSS
for 69 MB of frames; see ``benchmarks/django_slow_client.py``).

For daphne, :func:`send_gate` finds the connection's Twisted protocol behind
``send`` and registers a push producer on its transport — Twisted's public flow
control: the transport pauses the producer when its buffer is full and resumes
it once drained. The consumer waits on the gate before each frame, so frames
wait (bounded, latest state per task) in the EventStream instead of in Twisted.
The producer daphne had registered (its HTTP channel) keeps receiving the same
calls. Anything unexpected leaves the gate always open — the behaviour without
this module — and is logged at debug level.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)

_UNWRAP_LIMIT = 16


class SendGate:
    """Await :meth:`wait` before each send; open unless the server's buffer is full."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._transport: Any = None
        self._previous: Any = None
        self.pauses = 0

    @property
    def attached(self) -> bool:
        return self._transport is not None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait(self) -> None:
        await self._open.wait()

    # -- Twisted IPushProducer: called by the transport, on the event loop's thread --------
    def pauseProducing(self) -> None:
        self.pauses += 1
        self._open.clear()
        if self._previous is not None:
            self._previous.pauseProducing()

    def resumeProducing(self) -> None:
        self._open.set()
        if self._previous is not None:
            self._previous.resumeProducing()

    def stopProducing(self) -> None:
        self._open.set()  # the connection is gone: let the forwarder run into the closed socket
        if self._previous is not None:
            self._previous.stopProducing()

    # -- attach / detach ------------------------------------------------------------------
    def attach(self, transport: Any) -> None:
        previous = getattr(transport, "producer", None)
        if previous is not None:
            transport.unregisterProducer()
        try:
            transport.registerProducer(self, True)
        except Exception:
            if previous is not None:
                transport.registerProducer(previous, True)
            raise
        self._transport, self._previous = transport, previous

    def detach(self) -> None:
        transport, self._transport = self._transport, None
        previous, self._previous = self._previous, None
        self._open.set()
        if transport is None or getattr(transport, "producer", None) is not self:
            return
        try:
            transport.unregisterProducer()
            if previous is not None and not getattr(transport, "disconnected", False):
                transport.registerProducer(previous, True)
        except Exception as exc:
            logger.debug("could not hand the transport's producer back: %r", exc)


def _twisted_transport(send: Any) -> Any:
    """The Twisted TCP transport behind an ASGI ``send`` callable, or None.

    Daphne passes ``functools.partial(server.handle_reply, protocol)``; Channels'
    session middleware wraps it in a bound method whose owner keeps ``real_send``.
    """
    for _ in range(_UNWRAP_LIMIT):
        if isinstance(send, functools.partial):
            for arg in send.args:
                transport = getattr(arg, "transport", None)
                if (callable(getattr(arg, "registerProducer", None))
                        and callable(getattr(transport, "registerProducer", None))
                        and hasattr(transport, "producer")):
                    return transport
            send = send.func
        elif (owner := getattr(send, "__self__", None)) is not None and hasattr(owner, "real_send"):
            send = owner.real_send
        else:
            return None
    return None


def send_gate(send: Any) -> SendGate:
    """A gate for the connection behind ``send``: attached on daphne, always open elsewhere."""
    gate = SendGate()
    transport = _twisted_transport(send)
    if transport is not None:
        try:
            gate.attach(transport)
        except Exception as exc:
            logger.debug("no back-pressure for this WebSocket (Twisted transport refused "
                         "the producer: %r)", exc)
    return gate
