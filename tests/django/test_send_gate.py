"""The daphne back-pressure gate, on real Twisted/autobahn/Channels objects (no server).

A real daphne with a client that never reads is measured by
benchmarks/django_slow_client.py (+69 MB RSS without the gate, +2 MB with it).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from channels.sessions import InstanceSessionWrapper
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.testing import StringTransport

from flowrra.ui._send_gate import send_gate


class Recorder:
    """Stands where daphne leaves its HTTP channel: the transport's current producer."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def daphne_like_send() -> tuple[Any, StringTransport, Recorder]:
    transport = StringTransport()
    channel = Recorder()
    transport.registerProducer(channel, True)
    protocol = WebSocketProtocol()
    protocol.transport = transport

    async def handle_reply(protocol: Any, message: dict[str, Any]) -> None:
        return None

    send = functools.partial(handle_reply, protocol)  # what daphne hands the application
    wrapped = InstanceSessionWrapper({"type": "websocket", "cookies": {}}, send).send
    return wrapped, transport, channel


async def test_gate_follows_the_transport_and_chains_the_old_producer() -> None:
    send, transport, channel = daphne_like_send()
    gate = send_gate(send)
    assert gate.attached and transport.producer is gate and gate.is_open

    transport.producer.pauseProducing()  # Twisted: the write buffer is full
    assert not gate.is_open and channel.calls == ["pause"]
    waiter = asyncio.ensure_future(gate.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    transport.producer.resumeProducing()  # drained
    await asyncio.wait_for(waiter, 1)
    assert channel.calls == ["pause", "resume"] and gate.pauses == 1

    gate.detach()
    assert transport.producer is channel and gate.is_open


async def test_stop_producing_opens_the_gate() -> None:
    send, _transport, channel = daphne_like_send()
    gate = send_gate(send)
    gate.pauseProducing()
    gate.stopProducing()
    assert gate.is_open and channel.calls == ["pause", "stop"]


async def test_other_servers_get_an_open_unattached_gate() -> None:
    async def send(message: dict[str, Any]) -> None:  # uvicorn/hypercorn: send waits by itself
        return None

    for candidate in (send, functools.partial(send), object()):
        gate = send_gate(candidate)
        assert not gate.attached and gate.is_open
        gate.detach()


async def test_a_transport_that_refuses_keeps_its_producer() -> None:
    send, transport, channel = daphne_like_send()
    original = transport.registerProducer

    def refuse_strangers(producer: Any, streaming: bool) -> None:
        if not isinstance(producer, Recorder):
            raise RuntimeError("no producers here")
        original(producer, streaming)

    transport.registerProducer = refuse_strangers  # type: ignore[method-assign]
    gate = send_gate(send)
    assert not gate.attached and gate.is_open
    assert transport.producer is channel
