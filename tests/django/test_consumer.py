"""FlowrraConsumer over Channels' in-memory test harness (real servers are tested elsewhere)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings

from flowrra import Flowrra
from flowrra.events import event_bus, task_event
from flowrra.ui import django_websocket
from flowrra.ui.django_websocket import FlowrraConsumer, get_websocket_urlpatterns
from flowrra.ui.http import AuthError
from tests.conftest import unique, wait_until

TIMEOUT = 5


class ProbeConsumer(FlowrraConsumer):
    """Remembers its instances, so a test can look at the stream and the forwarding task."""

    instances: list[ProbeConsumer] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ProbeConsumer.instances.append(self)


@pytest.fixture(autouse=True)
def _forget_probes() -> None:
    ProbeConsumer.instances.clear()


def communicator(user: Any = None, *, consumer: type[FlowrraConsumer] = ProbeConsumer,
                 **options: Any) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(consumer.as_asgi(**options), "/flowrra/ws")
    if user is not None:
        comm.scope["user"] = user  # what AuthMiddlewareStack puts there
    return comm


async def connected(user: Any, **options: Any) -> WebsocketCommunicator:
    comm = communicator(user, **options)
    ok, code = await comm.connect(timeout=TIMEOUT)
    assert ok, f"connection refused with code {code}"
    hello = await comm.receive_json_from(timeout=TIMEOUT)
    assert hello["type"] == "hello" and hello["read_only"] is False
    return comm


async def next_update(comm: WebsocketCommunicator, task_id: str) -> dict[str, Any]:
    """The next task.update frame for ``task_id`` (frames of other tasks are skipped)."""
    while True:
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        if frame.get("type") == "task.update" and frame["task"]["task_id"] == task_id:
            return frame["task"]


async def test_frames_pending_running_success_in_order(app: Flowrra, staff_user: Any) -> None:
    gate = asyncio.Event()

    @app.task(name=unique("gated"))
    async def gated(x: int) -> int:
        await gate.wait()
        return x * 2

    await app.connect()  # submit works, but no worker yet: the task stays pending
    comm = await connected(staff_user)
    task_id = await app.submit(gated, 21)
    pending = await next_update(comm, task_id)
    assert pending["status"] == "pending" and pending["args"] == [21]
    await app.start()
    running = await next_update(comm, task_id)
    assert running["status"] == "running" and running["started_at"]
    gate.set()
    done = await next_update(comm, task_id)
    assert done["status"] == "success" and done["result"] == 42 and done["finished_at"]
    assert "origin" not in done
    await comm.disconnect()


async def test_disconnect_unsubscribes_and_ends_the_forwarder(staff_user: Any) -> None:
    before = len(event_bus._subscribers)
    comm = await connected(staff_user)
    (consumer,) = ProbeConsumer.instances
    stream, forwarder = consumer.stream, consumer.forwarder
    assert stream is not None and forwarder is not None
    assert stream._on_event in event_bus._subscribers
    assert len(event_bus._subscribers) == before + 1
    await comm.disconnect(timeout=TIMEOUT)
    assert len(event_bus._subscribers) == before
    assert forwarder.done() and consumer.forwarder is None and consumer.stream is None
    # the closed stream no longer takes events
    await event_bus.emit(task_event({"task_id": unique("late"), "status": "pending"}))
    assert stream.pending == 0


async def test_server_cancelling_the_consumer_also_unsubscribes(staff_user: Any) -> None:
    """A server shutting down cancels the app without a disconnect message."""
    before = len(event_bus._subscribers)
    comm = await connected(staff_user)
    (consumer,) = ProbeConsumer.instances
    forwarder = consumer.forwarder
    comm.future.cancel()
    await wait_until(lambda: len(event_bus._subscribers) == before, TIMEOUT,
                     message="subscriber removed after cancellation")
    assert forwarder is not None and forwarder.done()


async def test_ping_gets_pong(staff_user: Any) -> None:
    comm = await connected(staff_user)
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    await comm.disconnect()


async def test_a_client_that_never_reads_costs_bounded_memory(staff_user: Any) -> None:
    """Drive the consumer like a server with back-pressure whose client never reads."""
    before = len(event_bus._subscribers)
    consumer = FlowrraConsumer(max_pending=20)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    stuck = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "websocket.send":
            stuck.set()
            await asyncio.Event().wait()  # the socket buffer is full: this send never returns

    scope = {"type": "websocket", "path": "/flowrra/ws", "headers": [], "user": staff_user}
    runner = asyncio.ensure_future(consumer(scope, inbox.get, send))
    await inbox.put({"type": "websocket.connect"})
    await asyncio.wait_for(stuck.wait(), TIMEOUT)
    assert sent[0]["type"] == "websocket.accept"

    seen_elsewhere: list[str] = []

    async def other_subscriber(event: dict[str, Any]) -> None:
        seen_elsewhere.append(event["task"]["task_id"])

    event_bus.subscribe(other_subscriber)
    try:
        ids = [unique("flood") for _ in range(500)]
        for task_id in ids:
            await event_bus.emit(task_event({"task_id": task_id, "status": "pending"}))
        stream = consumer.stream
        assert stream is not None
        await wait_until(lambda: len(seen_elsewhere) == len(ids), TIMEOUT,
                         message="the other subscriber got every event")
        await wait_until(lambda: stream.dropped == len(ids) - 20, TIMEOUT,
                         message="the stuck socket's stream dropped the oldest states")
        assert stream.pending == 20
        assert len([m for m in sent if m["type"] == "websocket.send"]) == 1  # only the hello
    finally:
        await event_bus.unsubscribe(other_subscriber)
    await inbox.put({"type": "websocket.disconnect", "code": 1001})
    await asyncio.wait_for(runner, TIMEOUT)
    assert len(event_bus._subscribers) == before


async def test_latest_state_wins_for_a_slow_client(staff_user: Any) -> None:
    comm = await connected(staff_user, max_pending=5)
    (consumer,) = ProbeConsumer.instances
    task_id = unique("t")
    for status in ("pending", "running", "success"):
        consumer.stream is not None and await consumer.stream._on_event(
            task_event({"task_id": task_id, "status": status}))
    assert (await next_update(comm, task_id))["status"] == "success"
    await comm.disconnect()


@pytest.mark.parametrize("who", ["anonymous", "non-staff", "no-user-in-scope", "inactive-staff"])
async def test_unauthorized_connections_are_refused(who: str, plain_user: Any, staff_user: Any) -> None:
    before = len(event_bus._subscribers)
    user: Any = {"anonymous": AnonymousUser(), "non-staff": plain_user,
                 "no-user-in-scope": None, "inactive-staff": staff_user}[who]
    if who == "inactive-staff":
        staff_user.is_active = False
    try:
        comm = communicator(user)
        ok, code = await comm.connect(timeout=TIMEOUT)
    finally:
        staff_user.is_active = True
    assert not ok
    assert code == (4401 if who == "anonymous" else 4403)
    assert len(event_bus._subscribers) == before
    assert ProbeConsumer.instances[0].stream is None


async def test_custom_auth_hook(plain_user: Any) -> None:
    calls: list[Any] = []

    def only_viewers(request: Any) -> bool:  # sync: runs in a thread, may use the ORM
        calls.append(request)
        return request.user.username.startswith("viewer") and request.path == "/flowrra/ws"

    comm = await connected(plain_user, auth=only_viewers)
    await comm.disconnect()
    assert calls and calls[0].scope["type"] == "websocket"

    async def nobody(request: Any) -> bool:
        raise AuthError(401, "token expired")

    comm = communicator(plain_user, auth=nobody)
    assert await comm.connect(timeout=TIMEOUT) == (False, 4401)


async def test_a_broken_hook_fails_closed(staff_user: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Any) -> bool:
        raise RuntimeError("bug in the hook")

    comm = communicator(staff_user, auth=broken)
    with caplog.at_level(logging.ERROR):
        assert await comm.connect(timeout=TIMEOUT) == (False, 4403)
    assert "bug in the hook" in caplog.text


async def test_auth_setting_guards_the_socket(plain_user: Any) -> None:
    with override_settings(FLOWRRA_UI_AUTH="tests.django.hooks.everyone"):
        comm = await connected(plain_user)
        await comm.disconnect()
    with override_settings(FLOWRRA_UI_AUTH="tests.django.hooks.no_such_hook"):
        comm = communicator(plain_user)
        assert await comm.connect(timeout=TIMEOUT) == (False, 4403)


async def test_auth_middleware_stack_with_a_real_session(staff_user: Any) -> None:
    from django.test import AsyncClient

    client = AsyncClient()
    await sync_to_async(client.force_login)(staff_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    application = AuthMiddlewareStack(URLRouter(get_websocket_urlpatterns()))
    comm = WebsocketCommunicator(application, "/flowrra/ws", headers=[(b"cookie", cookie)])
    ok, _ = await comm.connect(timeout=TIMEOUT)
    assert ok
    assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "hello"
    await comm.disconnect()
    anonymous = WebsocketCommunicator(application, "/flowrra/ws")
    assert await anonymous.connect(timeout=TIMEOUT) == (False, 4401)


async def test_flowrra_app_setting(staff_user: Any, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(django_websocket, "_app_imported", False)
    with override_settings(FLOWRRA_APP="tests.django.hooks:not_an_app"):
        comm = communicator(staff_user)
        with caplog.at_level(logging.ERROR):
            assert await comm.connect(timeout=TIMEOUT) == (False, 1011)
        assert "not a Flowrra app" in caplog.text
    with override_settings(FLOWRRA_APP="tests.django.hooks:flowrra"):
        comm = await connected(staff_user)
        await comm.disconnect()
    from tests.django import hooks

    assert isinstance(hooks.flowrra, Flowrra)
    assert django_websocket._app_imported


@pytest.mark.parametrize("layer", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_works_with_a_channel_layer(layer: str, app: Flowrra, staff_user: Any) -> None:
    from channels.layers import get_channel_layer

    from tests.conftest import REDIS_URL

    config: dict[str, Any] = {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    if layer == "redis":
        config = {"BACKEND": "channels_redis.core.RedisChannelLayer",
                  "CONFIG": {"hosts": [REDIS_URL], "prefix": unique("flowrra-test-asgi")}}

    @app.task(name=unique("quick"))
    async def quick() -> str:
        return "done"

    with override_settings(CHANNEL_LAYERS={"default": config}):
        assert get_channel_layer() is not None
        await app.start()
        comm = await connected(staff_user)
        task_id = await app.submit(quick)
        statuses = []
        while not statuses or statuses[-1] != "success":
            statuses.append((await next_update(comm, task_id))["status"])
        assert statuses[-1] == "success"
        await comm.disconnect()
        if layer == "redis":
            await get_channel_layer().flush()


async def test_unreachable_relay_refuses_instead_of_hanging(staff_user: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Redis down: the handshake is refused after the timeout, so the page falls back to polling."""
    from flowrra.events import EventBus
    from flowrra.transports import TransportRelay
    from flowrra.transports.redis import RedisTransport

    bus = EventBus()
    transport = RedisTransport("redis://127.0.0.1:1/0", socket_timeout=0.2)  # nothing listens there
    relay = TransportRelay(transport, bus, "test")
    bus.add_relay(relay)
    try:
        comm = communicator(staff_user, bus=bus, subscribe_timeout=0.5)
        with caplog.at_level(logging.ERROR):
            assert await comm.connect(timeout=TIMEOUT) == (False, 1011)
        assert "did not start listening in time" in caplog.text
        assert bus.subscriber_count == 0 and not relay.listening
    finally:
        await transport.close()


async def test_foreign_origin_is_refused_even_for_staff(staff_user: Any) -> None:
    """Cross-site WebSocket hijacking: a staff session cookie must not open the socket."""
    comm = communicator(staff_user)
    comm.scope["headers"] = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://evil.example")]
    ok, code = await comm.connect(timeout=TIMEOUT)
    assert not ok and code == 4403
    own = communicator(staff_user)
    own.scope["headers"] = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]
    ok, _ = await own.connect(timeout=TIMEOUT)
    assert ok
    await own.disconnect()
