"""Shared Redis plumbing for the broker, the result backend and the event transport.

* URLs: ``redis://``, ``rediss://`` and ``unix://`` as redis-py understands them,
  plus our own ``key_prefix`` query parameter (stripped before redis-py sees it),
  so a whole Flowrra deployment can be namespaced by URL alone.
* One connection pool per URL and event loop, shared by every broker, backend and
  transport of the process and closed when the last of them closes.
* Errors: a lost connection is retried with exponential backoff for up to
  ``socket_timeout`` seconds (reconnecting each time); after that the caller gets a
  :class:`~flowrra.exceptions.BackendError` that names the server, instead of a
  redis-py exception or a hang.
* A lean command path (:func:`execute_pipeline`): arguments packed by hiredis,
  scripts run by EVALSHA (loaded on NOSCRIPT), several commands per write. On
  this hot path redis-py's generic ``execute_command`` costs more CPU than the
  round trip itself.
* :class:`Subscription`: a pub/sub listener that reconnects with backoff and
  re-subscribes by itself, for completions and events.
* :func:`fast_dumps` / :func:`fast_loads`: ujson when installed, with the
  standard ``json`` module as the authority on anything ujson refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import random
import weakref
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "Redis support needs the 'redis' package. Install it with: pip install 'flowrra[redis]'"
    ) from exc

from flowrra.exceptions import BackendError
from flowrra.serialization import dumps as _json_dumps

try:  # C packer: packing arguments is a large share of the per-task CPU otherwise
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - redis without the hiredis extra
    _hiredis_pack = None

try:  # 3x faster encoding of records and events; same JSON for every JSON-valid value
    import ujson as _ujson
except ImportError:  # pragma: no cover - optional accelerator
    _ujson = None


def fast_dumps(value: Any) -> str:
    """Compact JSON of ``value``; ujson when installed, the standard encoder otherwise.

    Anything ujson refuses or treats differently from ``json`` (NaN, bytes, huge
    numbers) goes through :func:`flowrra.serialization.dumps`, which stays the
    authority on what is valid.
    """
    if _ujson is not None:
        try:
            return _ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False,
                                allow_nan=False, reject_bytes=True)
        except (TypeError, ValueError, OverflowError):
            pass
    return _json_dumps(value)


def fast_loads(data: str) -> Any:
    """Decode JSON; ujson when installed (same values), ``json`` decides on anything it refuses."""
    if _ujson is not None:
        try:
            return _ujson.loads(data)
        except ValueError:
            pass
    return json.loads(data)

logger = logging.getLogger(__name__)

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "flowrra"
PREFIX_PARAM = "key_prefix"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Everything needed to reach one Redis namespace; hashable, so it keys the pool cache."""

    url: str  # without our own query parameters
    prefix: str
    max_connections: int = 50
    socket_timeout: float = 5.0
    retry_on_timeout: bool = True

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str | None = None, max_connections: int = 50,
                 socket_timeout: float = 5.0, retry_on_timeout: bool = True) -> RedisSettings:
        clean, url_prefix = split_url(url)
        prefix = key_prefix or url_prefix or DEFAULT_PREFIX
        if not isinstance(max_connections, int) or max_connections < 2:
            raise ValueError(f"max_connections must be an integer of at least 2, got {max_connections!r}")
        if not socket_timeout or socket_timeout <= 0:
            raise ValueError(f"socket_timeout must be greater than zero, got {socket_timeout!r}")
        return cls(clean, prefix, max_connections, float(socket_timeout), bool(retry_on_timeout))

    def public_url(self) -> str:
        """The URL with the key prefix folded back in (so other components share the namespace)."""
        if self.prefix == DEFAULT_PREFIX:
            return self.url
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}{urlencode({PREFIX_PARAM: self.prefix})}"

    def display(self) -> str:
        """The URL without credentials or options, for error messages and logs."""
        base = self.url.split("?", 1)[0]
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def split_url(url: str) -> tuple[str, str | None]:
    """Validate a Redis URL; return it without ``key_prefix`` and the prefix it named."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"{url!r} is not a Redis URL; expected 'redis://host:6379/0', "
                         "'rediss://host:6380/0' or 'unix:///path/to/redis.sock'")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"Unsupported Redis URL scheme {scheme + '://'!r}; use one of: "
                         + ", ".join(s + "://" for s in SCHEMES))
    if "?" not in url:
        return url, None
    base, query = url.split("?", 1)
    prefix = None
    kept = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == PREFIX_PARAM:
            if not value.strip():
                raise ValueError(f"{PREFIX_PARAM} in {url!r} must not be blank")
            prefix = value
        else:
            kept.append((key, value))
    return (f"{base}?{urlencode(kept)}" if kept else base), prefix


# -- one pool per URL and event loop ---------------------------------------------------
class _PoolEntry:
    __slots__ = ("client", "users")

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.users = 0


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[RedisSettings, _PoolEntry]] = (
    weakref.WeakKeyDictionary())


class _LeanPool(aioredis.BlockingConnectionPool):
    """A pool that keeps a few connections at hand for the lean command path.

    redis-py's ``get_connection``/``release`` cost more CPU than a pipelined round
    trip (a condition, a timeout, a readiness probe, metrics hooks). A connection
    that :func:`execute_pipeline` hands back is known clean (any error disconnects
    it), so up to ``keep`` of them are reused directly. ``keep`` stays well below
    ``max_connections`` so pub/sub listeners can always get a connection.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_hand: list[Any] = []
        self._keep = min(8, self.max_connections // 4)

    async def lease(self) -> Any:
        at_hand = self._at_hand
        while at_hand:
            conn = at_hand.pop()
            if conn.is_connected:
                return conn
            await self.release(conn)
        return await self.get_connection()

    async def give_back(self, conn: Any) -> None:
        if conn.is_connected and len(self._at_hand) < self._keep:
            self._at_hand.append(conn)
        else:
            await self.release(conn)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        at_hand, self._at_hand = self._at_hand, []
        for conn in at_hand:
            await self.release(conn)
        await super().disconnect(inuse_connections)


def _new_client(settings: RedisSettings) -> aioredis.Redis:
    pool = _LeanPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout,  # wait this long for a free connection
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.socket_timeout,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),  # Connection.retry: we retry ourselves, see run()
        decode_responses=True,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


def acquire_client(settings: RedisSettings) -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    per_loop = _pools.setdefault(loop, {})
    entry = per_loop.get(settings)
    if entry is None:
        entry = per_loop[settings] = _PoolEntry(_new_client(settings))
    entry.users += 1
    return entry.client


async def release_client(settings: RedisSettings, client: aioredis.Redis) -> None:
    loop = asyncio.get_running_loop()
    per_loop = _pools.get(loop, {})
    entry = per_loop.get(settings)
    if entry is None or entry.client is not client:
        await client.aclose(close_connection_pool=True)
        return
    entry.users -= 1
    if entry.users <= 0:
        del per_loop[settings]
        await client.aclose(close_connection_pool=True)


# -- retries ---------------------------------------------------------------------------
RETRYABLE: tuple[type[BaseException], ...] = (redis_errors.ConnectionError, OSError)


def backoff(attempt: int, base: float = 0.05, cap: float = 2.0) -> float:
    """Exponential backoff with jitter in [d/2, d]."""
    delay = min(cap, base * 2 ** min(attempt, 16))
    return delay / 2 + random.random() * delay / 2


class RedisConnection:
    """A component's handle on Redis: the shared client, key naming, and retrying calls."""

    def __init__(self, settings: RedisSettings, what: str) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        self.what = what
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retryable = RETRYABLE + ((redis_errors.TimeoutError,) if settings.retry_on_timeout
                                       else ())

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise BackendError(f"Redis {self.what} is not connected; call connect() first")
        return self._client

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self) -> aioredis.Redis:
        """The client for the running event loop (connections cannot cross loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # a client of a finished loop (asyncio.run per request) is simply dropped
            self._client = acquire_client(self.settings)
            self._loop = loop
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await release_client(self.settings, client)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args)``; on a connection failure retry with backoff, then BackendError."""
        self.connect()
        try:
            return await fn(*args, **kwargs)
        except self._retryable as exc:
            return await self._retry(fn, args, kwargs, exc)
        except redis_errors.RedisError as exc:
            raise BackendError(f"Redis {self.what} at {self.settings.display()} failed: {exc}") from exc

    async def script(self, script: LuaScript, *args: Any) -> Any:
        """EVALSHA ``script`` with ``args`` (no keys: scripts derive keys from the prefix)."""
        return await self.run(execute, self.connect(),
                              ("EVALSHA", script.sha, 0, *args), script)

    async def command(self, *args: Any) -> Any:
        return await self.run(execute, self.connect(), args)

    async def pipeline(self, commands: list[tuple[tuple[Any, ...], LuaScript | None]]) -> list[Any]:
        """Several commands in one round trip; a failed one raises BackendError."""
        replies = await self.run(execute_pipeline, self.connect(), commands)
        for reply in replies:
            if isinstance(reply, redis_errors.ResponseError):
                raise BackendError(f"Redis {self.what} at {self.settings.display()} failed: {reply}")
        return replies

    async def _retry(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                     kwargs: dict[str, Any], first: BaseException) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.socket_timeout
        attempt, last = 0, first
        while True:
            delay = backoff(attempt)
            if loop.time() + delay > deadline:
                raise BackendError(
                    f"Redis {self.what} at {self.settings.display()} is unreachable "
                    f"({type(last).__name__}: {last}); gave up after "
                    f"{self.settings.socket_timeout:g}s (socket_timeout). Is the server running?"
                ) from last
            logger.debug("redis %s: %s; retrying in %.2fs", self.what, last, delay)
            await asyncio.sleep(delay)
            attempt += 1
            try:
                return await fn(*args, **kwargs)
            except self._retryable as exc:
                last = exc
            except redis_errors.RedisError as exc:
                raise BackendError(
                    f"Redis {self.what} at {self.settings.display()} failed: {exc}") from exc


# -- lean command path ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LuaScript:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> LuaScript:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


def pack(args: tuple[Any, ...], conn: Any) -> bytes | list[bytes]:
    if _hiredis_pack is not None:
        return _hiredis_pack(args)
    return conn.pack_command(*args)


async def execute(client: aioredis.Redis, args: tuple[Any, ...],
                  script: LuaScript | None = None) -> Any:
    """Send one command on a pooled connection and read its reply, with no per-call extras.

    redis-py's ``execute_command`` adds retries, hooks and response callbacks that
    cost more CPU than the round trip itself on the hot path. ``script``: the
    command is an EVALSHA of it, loaded on NOSCRIPT.
    """
    reply = (await execute_pipeline(client, [(args, script)]))[0]
    if isinstance(reply, Exception):
        raise reply
    return reply


async def execute_pipeline(client: aioredis.Redis,
                           commands: list[tuple[tuple[Any, ...], LuaScript | None]]) -> list[Any]:
    """Send several commands in one write; return their replies (a ResponseError as a value).

    Redis runs them in order, so ``BLPOP`` followed by a claim script claims the
    moment the wake-up arrives, in a single round trip. A connection whose replies
    were not all read (connection error, cancellation) is disconnected, never reused.
    """
    pool: _LeanPool = client.connection_pool
    conn = await pool.lease()
    try:
        if len(commands) == 1:
            packed: Any = pack(commands[0][0], conn)
        else:
            packed = [b for args, _ in commands for b in _as_list(pack(args, conn))]
        await conn.send_packed_command(packed, check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except redis_errors.ResponseError as exc:
                replies.append(exc)
        for index, (args, script) in enumerate(commands):
            if isinstance(replies[index], redis_errors.NoScriptError) and script is not None:
                replies[index] = await _load_and_run(conn, script, args)
        return replies
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.give_back(conn)


def _as_list(packed: bytes | list[bytes]) -> list[bytes]:
    return [packed] if isinstance(packed, bytes) else packed


async def _load_and_run(conn: Any, script: LuaScript, args: tuple[Any, ...]) -> Any:
    await conn.send_packed_command(pack(("SCRIPT", "LOAD", script.source), conn),
                                   check_health=False)
    await conn.read_response()
    await conn.send_packed_command(pack(args, conn), check_health=False)
    try:
        return await conn.read_response()
    except redis_errors.ResponseError as exc:
        return exc


# -- pub/sub ---------------------------------------------------------------------------
MessageHandler = Callable[[str, str], Awaitable[None] | None]


class Subscription:
    """Listens on channels until stopped, reconnecting with backoff after connection loss.

    ``start`` returns once the server has confirmed the subscription, so a message
    published after ``start`` returns is guaranteed to be seen. ``on_resubscribed``
    runs after every reconnection: messages published while disconnected are lost
    (that is pub/sub), so owners use it to re-read what they might have missed.
    """

    def __init__(self, conn: RedisConnection, channels: Collection[str], on_message: MessageHandler,
                 on_resubscribed: Callable[[], Awaitable[None]] | None = None) -> None:
        self.conn = conn
        self.channels = tuple(channels)
        self.on_message = on_message
        self.on_resubscribed = on_resubscribed
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def confirmed(self) -> bool:
        """Running on this event loop, and the server has confirmed the subscription."""
        ready = self._ready
        return (self._task is not None and not self._task.done() and ready is not None
                and ready.done() and not ready.cancelled()
                and self._task.get_loop() is asyncio.get_running_loop())

    async def start(self) -> None:
        if self.confirmed:
            return
        if self._task is not None and self._task.get_loop() is not asyncio.get_running_loop():
            self._task = None  # its loop has finished; listen again on this one
        if not self.running:
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._task = loop.create_task(self._run(), name=f"flowrra-redis-sub-{self.channels[0]}")
        assert self._ready is not None
        await asyncio.shield(self._ready)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()

    async def _run(self) -> None:
        attempt = 0
        first = True
        while True:
            pool = self.conn.connect().connection_pool
            conn = None
            try:
                conn = await pool.get_connection()  # dedicated while subscribed
                await conn.send_packed_command(pack(("SUBSCRIBE", *self.channels), conn))
                while True:  # a lean reader: no per-message dicts, hooks or health checks
                    reply = await conn.read_response(timeout=math.inf, push_request=True)
                    kind = reply[0]
                    if kind == "message":
                        await self._deliver(reply[1], reply[2])
                    elif kind == "subscribe" and reply[2] == len(self.channels):
                        attempt = 0
                        if self._ready is not None and not self._ready.done():
                            self._ready.set_result(None)
                        if not first and self.on_resubscribed is not None:
                            await self.on_resubscribed()
                        first = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff(attempt, base=0.1)
                attempt += 1
                if attempt in (1, 10) or attempt % 100 == 0:
                    logger.warning("redis subscription to %s lost (%s); reconnecting in %.1fs",
                                   ", ".join(self.channels), exc, delay)
                await asyncio.sleep(delay)
            finally:
                if conn is not None:  # never hand a subscribed connection back as it is
                    with contextlib.suppress(Exception):
                        await conn.disconnect(nowait=True)
                    with contextlib.suppress(Exception):
                        await pool.release(conn)

    async def _deliver(self, channel: str, data: str) -> None:
        try:
            result = self.on_message(channel, data)
            if result is not None:
                await result
        except Exception:
            logger.exception("handler for redis channel %s failed; listening on", channel)
