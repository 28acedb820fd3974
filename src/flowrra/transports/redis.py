"""Redis pub/sub event transport: what any process publishes, every listening process receives.

Publishing never costs the caller a round trip: events are encoded at once (so
their order is fixed) and a background flusher sends everything queued since its
last flush in one script call. The queue is bounded; if Redis is unreachable for
long, the oldest events are dropped with a warning rather than growing memory.
Pub/sub keeps no history: events published while nobody listens are gone.

Task updates and control messages (``control.*``, e.g. cancellation) travel on
separate channels, so a process can listen to control messages only.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flowrra.brokers.batching import Batcher
from flowrra.redis_client import (
    LuaScript,
    RedisConnection,
    RedisSettings,
    Subscription,
    fast_dumps,
    fast_loads,
)
from flowrra.transports.base import EventHandler, EventTransport

logger = logging.getLogger(__name__)

_PUBLISH = LuaScript.of(r"""
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
""")


def database_number(url: str) -> int:
    """The database a Redis URL selects: ``redis://h/3`` -> 3, ``unix:///s?db=2`` -> 2."""
    parts = urlsplit(url)
    for key, value in parse_qsl(parts.query):
        if key == "db" and value.isdigit():
            return int(value)
    path = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
    return int(path) if path.isdigit() else 0


class RedisTransport(EventTransport):
    remote = True

    def __init__(self, url: str = "redis://localhost:6379/0", *, key_prefix: str | None = None,
                 max_connections: int = 50, socket_timeout: float = 5.0,
                 retry_on_timeout: bool = True, max_pending: int = 10_000) -> None:
        self.settings = RedisSettings.from_url(
            url, key_prefix=key_prefix, max_connections=max_connections,
            socket_timeout=socket_timeout, retry_on_timeout=retry_on_timeout)
        self._conn = RedisConnection(self.settings, "event transport")
        # Pub/sub channels are global to the server, not per database: name the
        # database in them too, so apps on db 11 and db 12 never see each other's events.
        scope = f"db{database_number(self.settings.url)}"
        self.events_channel = self._conn.key(scope, "events")
        self.control_channel = self._conn.key(scope, "control")
        self.max_pending = max_pending
        self._publisher: Batcher[tuple[str, str], None] = Batcher(
            self._flush, max_batch=1000, name="flowrra-redis-events")
        self._subscription: Subscription | None = None
        self._handler: EventHandler | None = None
        self._control_only = False
        self._dropped = 0

    async def publish(self, event: dict[str, Any]) -> None:
        try:
            data = fast_dumps(event)
        except (TypeError, ValueError) as exc:
            logger.warning("event %r cannot be encoded and was dropped: %s", event.get("type"), exc)
            return
        if self._publisher.pending >= self.max_pending:
            self._dropped += 1
            if self._dropped in (1, 100) or self._dropped % 10_000 == 0:
                logger.warning("event publishing is behind; %d event(s) dropped", self._dropped)
            return
        kind = event.get("type")
        channel = (self.control_channel if isinstance(kind, str) and kind.startswith("control.")
                   else self.events_channel)
        self._publisher.submit_nowait((channel, data))

    async def _flush(self, items: list[tuple[str, str]]) -> None:
        await self._conn.script(_PUBLISH, *[part for item in items for part in item])

    @property
    def channels(self) -> tuple[str, ...]:
        if self._control_only:
            return (self.control_channel,)
        return (self.events_channel, self.control_channel)

    async def listen(self, handler: EventHandler) -> None:
        self._handler = handler
        if self._subscription is None:
            self._conn.connect()
            self._subscription = Subscription(self._conn, self.channels, self._on_message)
        await self._subscription.start()

    async def set_interest(self, *, control_only: bool) -> None:
        if control_only == self._control_only:
            return
        self._control_only = control_only
        if self._subscription is not None:  # re-subscribe to the new set of channels
            await self.stop_listening()
            assert self._handler is not None
            await self.listen(self._handler)

    async def _on_message(self, channel: str, data: str) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            event = fast_loads(data)
        except ValueError:
            logger.warning("ignoring an undecodable event on %s", channel)
            return
        result = handler(event)
        if result is not None:
            await result

    async def stop_listening(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.stop()

    async def close(self) -> None:
        await self.stop_listening()
        await self._publisher.close()
        await self._conn.close()
