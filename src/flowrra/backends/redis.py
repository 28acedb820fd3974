"""Redis result backend: one JSON record per task, indexed by status, expiring by TTL.

* ``P:result:<id>``: the record as JSON (with ``PX ttl`` when a TTL is set).
* ``P:results:<status>``: a sorted set per status, score = time of the last
  update in microseconds (server clock, strictly increasing), maintained in the
  same script as the record itself, so ``list_by_status`` and
  ``count_by_status`` read indexes and never scan the key space. Records that
  expired are pruned from the indexes lazily, by score (TTL) and on read.
* Final records are published on ``P:done`` in the same script, so
  ``wait_for`` in any process wakes at once; the waiter subscribes before it
  reads, so a completion between its read and its wait is never missed.

Concurrent ``store`` and ``get`` calls are batched into one round trip per
event-loop turn.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flowrra.backends.base import ResultBackend, status_value
from flowrra.brokers.batching import Batcher
from flowrra.redis_client import (
    LuaScript,
    RedisConnection,
    RedisSettings,
    Subscription,
    fast_dumps,
    fast_loads,
)
from flowrra.task import TERMINAL_STATUSES, TaskResult, TaskStatus

logger = logging.getLogger(__name__)

#: Our records start {"task_id":...,"status":"..."}; the head of a final one matches this.
_FINAL_MARK = re.compile('"status":"(?:' + "|".join(s.value for s in TERMINAL_STATUSES) + ')"')
_HEAD = 64 + 1024  # room for any realistic task id before the status

_STATUSES = "{" + ", ".join(f"'{s.value}'" for s in TaskStatus) + "}"
_FINAL = "{" + ", ".join(f"['{s.value}'] = true" for s in TERMINAL_STATUSES) + "}"

_COMMON = r"""
local P = ARGV[1]
local STATUSES = __STATUSES__
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function prune(ttl_ms)
  if ttl_ms > 0 then
    local horizon = string.format('%.0f', now_us() - ttl_ms * 1000)
    for _, s in ipairs(STATUSES) do
      redis.call('ZREMRANGEBYSCORE', P .. ':results:' .. s, '-inf', '(' .. horizon)
    end
  end
end
""".replace("__STATUSES__", _STATUSES)

# ARGV: P, ttl_ms (0: none), then per record: id, status, json.
# One SET per record (its GET reply tells which index held the id before); the index
# updates are grouped into one ZREM / ZADD per status for the whole batch.
_STORE = _COMMON + r"""
local FINAL = __FINAL__
local ttl = tonumber(ARGV[2])
local now = now_us()
local clock = tonumber(redis.call('GET', P .. ':results:clock') or '0')
local before, after, order = {}, {}, {}
for i = 3, #ARGV, 3 do
  local id, status, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if now <= clock then now = clock + 1 end
  clock = now
  local old
  if ttl > 0 then
    old = redis.call('SET', P .. ':result:' .. id, record, 'PX', ttl, 'GET')
  else
    old = redis.call('SET', P .. ':result:' .. id, record, 'GET')
  end
  if before[id] == nil then
    -- our records start {"task_id":...,"status":"..."}; no string value can contain
    -- the unescaped sequence "status":" so the first match is the record's status
    before[id] = old and (string.match(old, '"status":"(%l+)"') or '*') or false
    order[#order + 1] = id
  end
  after[id] = {status, string.format('%.0f', now)}
  if FINAL[status] then redis.call('PUBLISH', P .. ':done', id .. '\n' .. record) end
end
local adds, rems = {}, {}
for _, id in ipairs(order) do
  local status, score = after[id][1], after[id][2]
  local add = adds[status]
  if not add then add = {}; adds[status] = add end
  add[#add + 1] = score
  add[#add + 1] = id
  local was = before[id]
  if was == '*' then
    for _, s in ipairs(STATUSES) do
      if s ~= status then redis.call('ZREM', P .. ':results:' .. s, id) end
    end
  elseif was and was ~= status then
    local rem = rems[was]
    if not rem then rem = {}; rems[was] = rem end
    rem[#rem + 1] = id
  end
end
for status, ids in pairs(rems) do redis.call('ZREM', P .. ':results:' .. status, unpack(ids)) end
for status, add in pairs(adds) do redis.call('ZADD', P .. ':results:' .. status, unpack(add)) end
redis.call('SET', P .. ':results:clock', string.format('%.0f', clock))
return 1
""".replace("__FINAL__", _FINAL)

# ARGV: P, status, ttl_ms, offset, limit (-1: all). Newest first; drops ids whose record expired.
_LIST = _COMMON + r"""
local key = P .. ':results:' .. ARGV[2]
prune(tonumber(ARGV[3]))
local start, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
while limit < 0 or #out < limit do
  local want = 500
  if limit >= 0 then want = math.min(want, limit - #out) end
  local ids = redis.call('ZREVRANGE', key, start, start + want - 1)
  if #ids == 0 then break end
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = P .. ':result:' .. id end
  local values = redis.call('MGET', unpack(keys))
  for i, id in ipairs(ids) do
    if values[i] then
      out[#out + 1] = values[i]
      start = start + 1
    else
      redis.call('ZREM', key, id)
    end
  end
end
return out
"""

# ARGV: P, ttl_ms
_COUNT = _COMMON + r"""
prune(tonumber(ARGV[2]))
local out = {}
for i, s in ipairs(STATUSES) do out[i] = redis.call('ZCARD', P .. ':results:' .. s) end
return out
"""

# ARGV: P, id
_DELETE = _COMMON + r"""
for _, s in ipairs(STATUSES) do redis.call('ZREM', P .. ':results:' .. s, ARGV[2]) end
return redis.call('DEL', P .. ':result:' .. ARGV[2])
"""

# ARGV: P. Deletes up to 1000 records per call; returns how many index entries remain.
_CLEAR = _COMMON + r"""
local budget = 1000
local left = 0
for _, s in ipairs(STATUSES) do
  local key = P .. ':results:' .. s
  local ids = redis.call('ZRANGE', key, 0, budget - 1)
  if #ids > 0 then
    local keys = {}
    for i, id in ipairs(ids) do keys[i] = P .. ':result:' .. id end
    redis.call('DEL', unpack(keys))
    redis.call('ZREM', key, unpack(ids))
    budget = budget - #ids
  end
  left = left + redis.call('ZCARD', key)
  if budget <= 0 then return left + 1 end
end
if left == 0 then redis.call('DEL', P .. ':results:clock') end
return left
"""


class RedisBackend(ResultBackend):
    shared = True
    schemes = ("redis", "rediss", "unix")

    def __init__(self, url: str = "redis://localhost:6379/0", ttl: float | None = None, *,
                 max_connections: int = 50, socket_timeout: float = 5.0,
                 retry_on_timeout: bool = True, key_prefix: str | None = None) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds (or None), got {ttl!r}")
        super().__init__(ttl=ttl)
        self.settings = RedisSettings.from_url(
            url, key_prefix=key_prefix, max_connections=max_connections,
            socket_timeout=socket_timeout, retry_on_timeout=retry_on_timeout)
        self.url = self.settings.public_url()
        self.prefix = self.settings.prefix
        self._ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        self._conn = RedisConnection(self.settings, "result backend")
        self._scripts = {name: LuaScript.of(source) for name, source in (
            ("store", _STORE), ("list", _LIST), ("count", _COUNT), ("delete", _DELETE),
            ("clear", _CLEAR))}
        self._storer: Batcher[tuple[str, str, str], None] = Batcher(
            self._store_batch, max_inflight=2, name="flowrra-redis-store")
        self._getter: Batcher[str, str | None] = Batcher(
            self._get_batch, max_inflight=2, name="flowrra-redis-get")
        self._subscription: Subscription | None = None

    async def connect(self) -> None:
        if self._conn.connected:
            return
        self._conn.connect()

    async def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.stop()
        await self._storer.close()
        await self._getter.close()
        await self._conn.close()

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._conn.script(self._scripts[name], self.prefix, *args)

    # -- records --------------------------------------------------------------------
    async def store_record(self, result: TaskResult, data: dict[str, Any] | None = None) -> None:
        # Encoded now, not at flush time: the batch must hold this state, not a later one.
        encoded = fast_dumps(result.to_dict if data is None else data)
        await self._storer.submit((result.task_id, result.status.value, encoded))

    async def _store_batch(self, items: list[tuple[str, str, str]]) -> None:
        args: list[Any] = [self._ttl_ms]
        for item in items:
            args += item
        await self._run("store", *args)

    async def get(self, task_id: str) -> TaskResult | None:
        raw = await self._getter.submit(task_id)
        return None if raw is None else TaskResult.from_dict(fast_loads(raw))

    async def _get_batch(self, ids: list[str]) -> list[str | None]:
        return await self._conn.command("MGET", *[self._conn.key("result", i) for i in ids])

    async def delete(self, task_id: str) -> bool:
        return bool(await self._run("delete", task_id))

    async def clear(self) -> int:
        """Returns the count taken just before clearing (approximate under concurrent writes)."""
        removed = await self.count()
        while await self._run("clear"):
            pass
        return removed

    async def list_by_status(self, status: TaskStatus | str, limit: int | None = None,
                             offset: int = 0) -> list[TaskResult]:
        wanted = status_value(status)
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"limit and offset must not be negative, got {limit!r}, {offset!r}")
        if limit == 0:
            return []
        rows = await self._run("list", wanted, self._ttl_ms, offset, -1 if limit is None else limit)
        return [TaskResult.from_dict(fast_loads(row)) for row in rows]

    async def count_by_status(self) -> dict[str, int]:
        counts = await self._run("count", self._ttl_ms)
        return {status.value: int(n) for status, n in zip(TaskStatus, counts, strict=True)}

    # -- completion notifications ------------------------------------------------------
    async def _get_if_final(self, task_id: str) -> TaskResult | None:
        raw = await self._getter.submit(task_id)
        if raw is None or not _FINAL_MARK.search(raw, 0, _HEAD):
            return None
        return TaskResult.from_dict(fast_loads(raw))

    async def _watch(self, task_id: str) -> None:
        if self._subscription is not None and self._subscription.confirmed:
            return
        if self._subscription is None:
            if not self._conn.connected:
                await self.connect()
            self._subscription = Subscription(self._conn, (self._conn.key("done"),),
                                              self._on_done, self._recheck_waiters)
        await self._subscription.start()

    def _on_done(self, channel: str, data: str) -> None:
        task_id, _, record = data.partition("\n")
        if task_id in self._waiters:
            self._notify(TaskResult.from_dict(fast_loads(record)))

    async def _recheck_waiters(self) -> None:
        """After a reconnection: completions published while we were away were lost; re-read."""
        for task_id in list(self._waiters):
            try:
                record = await self.get(task_id)
            except Exception as exc:
                logger.warning("could not re-read task %s after reconnecting: %s", task_id, exc)
                continue
            if record is not None and record.is_complete:
                self._notify(record)
