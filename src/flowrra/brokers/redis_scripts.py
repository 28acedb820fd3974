"""Lua scripts of the Redis broker: every multi-step state change is one atomic script.

Key layout under the prefix ``P`` (no hash tags: a standalone server or a
replicated primary, not Redis Cluster):

``P:msg``          hash  id -> 16-hex-digit enqueue sequence + task JSON
``P:q:<queue>``    zset  score = priority, member = sequence + id (FIFO among equals)
``P:queues``       set   queue names ever used (for stats)
``P:delayed``      zset  id -> eta (ms)
``P:leases``       zset  id -> lease deadline (ms, Redis server clock)
``P:owner``        hash  id -> worker id holding the lease
``P:wake:<queue>`` list  one token per ready task, for workers blocked in BLPOP
``P:hint``         list  "the delayed set changed": wakes one idle worker to re-plan
``P:seen:<id>``    string with TTL: ids submitted with dedupe
``P:dead``         zset  id -> sequence (newest last);  ``P:deadmsg`` hash id -> JSON
``P:workers``      zset  worker id -> expiry (ms);      ``P:winfo`` hash id -> JSON
``P:seq``          counter for sequences

Times come from ``TIME`` on the server, so worker clocks never decide a lease.
Numbers are formatted with ``%.0f`` before going back to Redis: Lua's default
number formatting keeps only 14 significant digits.
"""

from __future__ import annotations

_COMMON = r"""
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x) return string.format('%.0f', x) end
-- Wake tokens: about one per ready task (at most 1000), for workers blocked in BLPOP.
local function push_tokens(queue, n)
  local key = P .. ':wake:' .. queue
  if n > 0 then
    n = math.min(n, 1000 - redis.call('LLEN', key))
    if n > 0 then
      local ones = {}
      for i = 1, n do ones[i] = '1' end
      redis.call('RPUSH', key, unpack(ones))
    end
  elseif n < 0 then
    redis.call('LPOP', key, -n)
  end
end
-- Make the tokens of ``queue`` match its ready tasks again (claims consume them unevenly).
local function normalize_tokens(queue)
  local key = P .. ':wake:' .. queue
  local want = math.min(redis.call('ZCARD', P .. ':q:' .. queue), 1000)
  local have = redis.call('LLEN', key)
  if have > want then
    redis.call('LTRIM', key, have - want, -1)
  elseif have < want then
    push_tokens(queue, want - have)
  end
end
local function add_dead(id, record, max_dead)
  local seq = redis.call('INCR', P .. ':seq')
  redis.call('ZADD', P .. ':dead', seq, id)
  redis.call('HSET', P .. ':deadmsg', id, record)
  local excess = redis.call('ZCARD', P .. ':dead') - max_dead
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', P .. ':dead', 0, excess - 1)) do
      redis.call('ZREM', P .. ':dead', old)
      redis.call('HDEL', P .. ':deadmsg', old)
    end
  end
end
local function forget(id)
  redis.call('ZREM', P .. ':leases', id)
  redis.call('HDEL', P .. ':owner', id)
  redis.call('HDEL', P .. ':msg', id)
end
-- Put a stored message (back) into its ready queue; undecodable ones become dead letters.
local function make_ready(id, v, now, max_dead, tokens)
  local ok, d = pcall(cjson.decode, string.sub(v, 17))
  if ok and type(d) == 'table' and type(d.queue) == 'string' then
    redis.call('ZADD', P .. ':q:' .. d.queue, tonumber(d.priority) or 0, string.sub(v, 1, 16) .. id)
    redis.call('SADD', P .. ':queues', d.queue)
    tokens[d.queue] = (tokens[d.queue] or 0) + 1
    return
  end
  forget(id)
  add_dead(id, cjson.encode({task_id = id, task_name = '', failed_at_ms = now,
    error = 'message could not be decoded', payload = cjson.null, raw = string.sub(v, 17)}), max_dead)
end
local function hint()
  if redis.call('LLEN', P .. ':hint') < 16 then redis.call('RPUSH', P .. ':hint', '1') end
end
-- Store and queue one task (requeue, dead-letter retry), waking a worker.
local function enqueue_one(id, queue, prio, eta, payload, now)
  local header = string.format('%016x', redis.call('INCR', P .. ':seq'))
  redis.call('HSET', P .. ':msg', id, header .. payload)
  local e = tonumber(eta)
  if e and e > now then
    redis.call('ZADD', P .. ':delayed', num(e), id)
    hint()
    return
  end
  redis.call('ZREM', P .. ':delayed', id)
  redis.call('ZADD', P .. ':q:' .. queue, prio, header .. id)
  redis.call('SADD', P .. ':queues', queue)
  push_tokens(queue, 1)
end
"""

# ARGV: P, dedupe_ttl_s, then per task: id, queue, priority, eta_ms|'', dedupe '1'|'0', payload.
# A handful of commands per batch, none per task (dedupe checks aside).
ENQUEUE = _COMMON + r"""
local now = now_ms()
local count = (#ARGV - 2) / 6
local seq = redis.call('INCRBY', P .. ':seq', count) - count
local out, msg, ready, ready_ids, delayed = {}, {}, {}, {}, {}
for i = 3, #ARGV, 6 do
  seq = seq + 1
  local id, queue, eta = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
  local ok = 1
  if ARGV[i + 4] == '1' then
    if redis.call('HEXISTS', P .. ':msg', id) == 1
       or not redis.call('SET', P .. ':seen:' .. id, '1', 'NX', 'EX', ARGV[2]) then
      ok = 0
    end
  end
  if ok == 1 then
    local header = string.format('%016x', seq)
    msg[#msg + 1] = id
    msg[#msg + 1] = header .. ARGV[i + 5]
    if eta and eta > now then
      delayed[#delayed + 1] = num(eta)
      delayed[#delayed + 1] = id
    else
      local q = ready[queue]
      if not q then q = {}; ready[queue] = q end
      q[#q + 1] = ARGV[i + 2]
      q[#q + 1] = header .. id
      ready_ids[#ready_ids + 1] = id
    end
  end
  out[#out + 1] = ok
end
if #msg > 0 then redis.call('HSET', P .. ':msg', unpack(msg)) end
if #ready_ids > 0 then redis.call('ZREM', P .. ':delayed', unpack(ready_ids)) end
if #delayed > 0 then
  redis.call('ZADD', P .. ':delayed', unpack(delayed))
  hint()
end
for queue, q in pairs(ready) do
  redis.call('ZADD', P .. ':q:' .. queue, unpack(q))
  redis.call('SADD', P .. ':queues', queue)
  push_tokens(queue, #q / 2)
end
return out
"""

# ARGV: P, n, worker, visibility_ms, max_dead, queue...
# Returns {due_in_ms or -1, id, message, id, message, ...}
CLAIM = _COMMON + r"""
local now = now_ms()
local n, worker, vt = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local max_dead = tonumber(ARGV[5])
local tokens = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':delayed', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', P .. ':delayed', id)
  local v = redis.call('HGET', P .. ':msg', id)
  if v then make_ready(id, v, now, max_dead, tokens) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', P .. ':leases', id)
  redis.call('HDEL', P .. ':owner', id)
  local v = redis.call('HGET', P .. ':msg', id)
  if v then make_ready(id, v, now, max_dead, tokens) end
end
local queues = {}
for i = 6, #ARGV do queues[#queues + 1] = ARGV[i] end
local out = {-1}
local claimed = {}
local total = 0
if n > 0 then
  -- candidates: the best n of every requested queue, merged by (priority, sequence)
  local cand = {}
  for _, q in ipairs(queues) do
    local head = redis.call('ZRANGE', P .. ':q:' .. q, 0, n - 1, 'WITHSCORES')
    for i = 1, #head, 2 do cand[#cand + 1] = {tonumber(head[i + 1]), head[i], q} end
  end
  if #queues > 1 then
    table.sort(cand, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
  end
  local take, ids, removed = math.min(n, #cand), {}, {}
  for i = 1, take do
    local c = cand[i]
    ids[i] = string.sub(c[2], 17)
    local r = removed[c[3]]
    if not r then r = {}; removed[c[3]] = r end
    r[#r + 1] = c[2]
  end
  for q, members in pairs(removed) do redis.call('ZREM', P .. ':q:' .. q, unpack(members)) end
  if take > 0 then
    local values = redis.call('HMGET', P .. ':msg', unpack(ids))
    local deadline = num(now + vt)
    local leases, owners = {}, {}
    for i = 1, take do
      local v, c = values[i], cand[i]
      if v and string.sub(v, 1, 16) == string.sub(c[2], 1, 16) then
        leases[#leases + 1] = deadline
        leases[#leases + 1] = ids[i]
        owners[#owners + 1] = ids[i]
        owners[#owners + 1] = worker
        out[#out + 1] = ids[i]
        out[#out + 1] = v
        claimed[c[3]] = (claimed[c[3]] or 0) + 1
        total = total + 1
      end
    end
    if total > 0 then
      redis.call('ZADD', P .. ':leases', unpack(leases))
      redis.call('HSET', P .. ':owner', unpack(owners))
    end
  end
end
-- the BLPOP that may have run just before this script consumed a token: recount
for _, q in ipairs(queues) do tokens[q] = true end
for q in pairs(tokens) do normalize_tokens(q) end
if total < n then
  local due = nil
  local d = redis.call('ZRANGE', P .. ':delayed', 0, 0, 'WITHSCORES')
  if d[2] then due = tonumber(d[2]) end
  local l = redis.call('ZRANGE', P .. ':leases', 0, 0, 'WITHSCORES')
  if l[2] and (due == nil or tonumber(l[2]) < due) then due = tonumber(l[2]) end
  if due then out[1] = math.max(0, due - now) end
end
return out
"""

# ARGV: P, id...
ACK = r"""
local P = ARGV[1]
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('ZREM', P .. ':leases', unpack(ids))
redis.call('HDEL', P .. ':owner', unpack(ids))
redis.call('HDEL', P .. ':msg', unpack(ids))
return #ids
"""

# ARGV: P, id, queue, priority, eta_ms|'', payload
REQUEUE = _COMMON + r"""
local now = now_ms()
local id, queue = ARGV[2], ARGV[3]
redis.call('ZREM', P .. ':leases', id)
redis.call('HDEL', P .. ':owner', id)
enqueue_one(id, queue, ARGV[4], ARGV[5], ARGV[6], now)
return 1
"""

# ARGV: P, worker, then per task: id, queue, priority. Only leases held by ``worker``.
RELEASE = _COMMON + r"""
local worker = ARGV[2]
local tokens = {}
local released = 0
for i = 3, #ARGV, 3 do
  local id, queue = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', P .. ':owner', id) == worker then
    redis.call('ZREM', P .. ':leases', id)
    redis.call('HDEL', P .. ':owner', id)
    local v = redis.call('HGET', P .. ':msg', id)
    if v then
      redis.call('ZADD', P .. ':q:' .. queue, ARGV[i + 2], string.sub(v, 1, 16) .. id)
      tokens[queue] = (tokens[queue] or 0) + 1
      released = released + 1
    end
  end
end
for q, c in pairs(tokens) do push_tokens(q, c) end
return released
"""

# ARGV: P, worker, visibility_ms, id...
EXTEND = r"""
local P, worker = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local deadline = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  + tonumber(ARGV[3]))
local renewed = 0
for i = 4, #ARGV do
  if redis.call('HGET', P .. ':owner', ARGV[i]) == worker then
    redis.call('ZADD', P .. ':leases', 'XX', deadline, ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""

# ARGV: P, id, queue, priority, payload, dedupe_ttl_s
REVOKE = _COMMON + r"""
local id = ARGV[2]
local v = redis.call('HGET', P .. ':msg', id)
if not v or redis.call('ZSCORE', P .. ':leases', id) then return 0 end
if redis.call('ZREM', P .. ':delayed', id) == 1 then
  redis.call('HDEL', P .. ':msg', id)
  return 1
end
local ok, d = pcall(cjson.decode, string.sub(v, 17))
if not ok or type(d) ~= 'table' or type(d.queue) ~= 'string' then return 0 end
if redis.call('ZREM', P .. ':q:' .. d.queue, string.sub(v, 1, 16) .. id) == 1 then
  redis.call('HDEL', P .. ':msg', id)
  push_tokens(d.queue, -1)
  return 1
end
return 0
"""

# ARGV: P, max_dead, id, record_json
DEAD_LETTER = _COMMON + r"""
forget(ARGV[3])
add_dead(ARGV[3], ARGV[4], tonumber(ARGV[2]))
return 1
"""

# ARGV: P, id, queue, priority, payload
RETRY_DEAD = _COMMON + r"""
local id, queue = ARGV[2], ARGV[3]
if redis.call('ZREM', P .. ':dead', id) == 0 then return 0 end
redis.call('HDEL', P .. ':deadmsg', id)
enqueue_one(id, queue, ARGV[4], '', ARGV[5], now_ms())
return 1
"""

# ARGV: P, id|''
PURGE_DEAD = r"""
local P, id = ARGV[1], ARGV[2]
if id ~= '' then
  local n = redis.call('ZREM', P .. ':dead', id)
  redis.call('HDEL', P .. ':deadmsg', id)
  return n
end
local n = redis.call('ZCARD', P .. ':dead')
redis.call('DEL', P .. ':dead', P .. ':deadmsg')
return n
"""

# ARGV: P, start, stop
LIST_DEAD = r"""
local P = ARGV[1]
local ids = redis.call('ZREVRANGE', P .. ':dead', ARGV[2], ARGV[3])
if #ids == 0 then return {} end
return redis.call('HMGET', P .. ':deadmsg', unpack(ids))
"""

# ARGV: P
STATS = r"""
local P = ARGV[1]
local queued = 0
for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
  queued = queued + redis.call('ZCARD', P .. ':q:' .. q)
end
return {queued, redis.call('ZCARD', P .. ':delayed'), redis.call('ZCARD', P .. ':leases'),
        redis.call('ZCARD', P .. ':dead')}
"""

# ARGV: P, id, ttl_ms, info_json ('' to unregister)
REGISTER_WORKER = _COMMON + r"""
if ARGV[4] == '' then
  redis.call('ZREM', P .. ':workers', ARGV[2])
  redis.call('HDEL', P .. ':winfo', ARGV[2])
  return 0
end
redis.call('ZADD', P .. ':workers', num(now_ms() + tonumber(ARGV[3])), ARGV[2])
redis.call('HSET', P .. ':winfo', ARGV[2], ARGV[4])
return 1
"""

# ARGV: P
LIST_WORKERS = _COMMON + r"""
local now = now_ms()
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':workers', '-inf', now)) do
  redis.call('ZREM', P .. ':workers', id)
  redis.call('HDEL', P .. ':winfo', id)
end
local ids = redis.call('ZRANGE', P .. ':workers', 0, -1)
if #ids == 0 then return {} end
return redis.call('HMGET', P .. ':winfo', unpack(ids))
"""
