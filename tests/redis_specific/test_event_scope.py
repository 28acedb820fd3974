"""Apps sharing one Redis never see each other's events (issue 10, item 9).

Redis pub/sub channels are global to the server, whatever the database, so the
channel names carry the database and the key prefix. Each check publishes on
the "wrong" app, waits until a listener of that app has it (so Redis has
written it to every subscriber that wanted it), then publishes a sentinel on
the other app's own channel: once the sentinel has arrived, anything wrongly
routed before it would have arrived too.
"""

from __future__ import annotations

import pytest

from flowrra import BrokerConfig, Config, Flowrra
from flowrra.transports.redis import RedisTransport, database_number
from tests.conftest import REDIS_URL, unique, wait_until

pytestmark = pytest.mark.redis

_BASE = REDIS_URL.rsplit("/", 1)[0]


class Inbox:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.events.append(event)


@pytest.mark.parametrize(("url", "db"), [
    ("redis://h:6379/12", 12), ("redis://h:6379", 0), ("rediss://h/3?x=1", 3),
    ("unix:///run/redis.sock?db=2", 2), ("unix:///run/redis.sock", 0)])
def test_database_number(url: str, db: int) -> None:
    assert database_number(url) == db


@pytest.mark.parametrize("other", ["another database", "another key prefix"])
async def test_apps_on_one_redis_do_not_see_each_others_events(other: str) -> None:
    prefix = unique("scope")
    mine_url, other_url = f"{_BASE}/11", f"{_BASE}/12"
    other_prefix = prefix
    if other == "another key prefix":
        other_url, other_prefix = mine_url, unique("scope-other")
    sender = RedisTransport(mine_url, key_prefix=prefix)
    listener = RedisTransport(mine_url, key_prefix=prefix)
    stranger = RedisTransport(other_url, key_prefix=other_prefix)
    mine, theirs = Inbox(), Inbox()
    try:
        await listener.listen(mine)
        await stranger.listen(theirs)
        await sender.publish({"type": "task.update", "n": 1})
        await wait_until(lambda: mine.events, timeout=10, message="the app's own listener")
        await stranger.publish({"type": "task.update", "n": "sentinel"})
        await wait_until(lambda: theirs.events, timeout=10, message="the sentinel")
        assert [e["n"] for e in theirs.events] == ["sentinel"]
        assert [e["n"] for e in mine.events] == [1]
    finally:
        for transport in (sender, listener, stranger):
            await transport.close()


def test_broker_transport_uses_the_queue_key() -> None:
    app_a = Flowrra(Config(broker=BrokerConfig(f"{_BASE}/11", queue_key="team-a")))
    app_b = Flowrra(Config(broker=BrokerConfig(f"{_BASE}/11", queue_key="team-b")))
    assert app_a.transport.events_channel != app_b.transport.events_channel  # type: ignore[attr-defined]
    assert app_a.transport.events_channel.startswith("team-a:")  # type: ignore[attr-defined]
