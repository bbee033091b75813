"""The Lua scripts of `RedisStore`: each change to the outbox is one atomic step on the server.

Every script gets the key prefix as ARGV[1] and touches only keys under it (one hash tag, so one Redis
Cluster slot); KEYS[1] names one of those keys so a cluster client routes the call to the right node.
Delivery hashes (`<prefix>d:<member>`) hold: mid, sink, target, seq, status, attempts, next_at, last_error,
ref (JSON), updated_at. Times are Unix seconds as text.
"""

from __future__ import annotations

# ARGV: prefix, insert ("1": add the message first), message id, body, kind, now, then (sink, target, member)...
# Returns 1, or 0 when the message already existed (insert) or does not exist (no insert).
ADD_DELIVERIES = """
local P = ARGV[1]
local seq
if ARGV[2] == '1' then
  if redis.call('HSETNX', P .. 'msg', ARGV[3], ARGV[4]) == 0 then return 0 end
  seq = redis.call('INCR', P .. 'seq')
  redis.call('HSET', P .. 'msg:seq', ARGV[3], seq)
  if ARGV[5] == 'alert' then redis.call('ZADD', P .. 'alerts', ARGV[6], ARGV[3]) end
else
  seq = redis.call('HGET', P .. 'msg:seq', ARGV[3])
  if not seq then return 0 end
end
for i = 7, #ARGV, 3 do
  local sink, target, member = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = P .. 'd:' .. member
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'mid', ARGV[3], 'sink', sink, 'target', target, 'seq', seq, 'status', 'pending',
               'attempts', 0, 'next_at', ARGV[6], 'updated_at', ARGV[6])
    redis.call('ZADD', P .. 'pending:' .. sink, ARGV[6], member)
    redis.call('ZADD', P .. 'status:pending', seq, member)
  end
end
return 1
"""

# ARGV: prefix, member, op ("done" | "retry" | "parked"), attempts to add, next_at, error, ref (JSON), now.
UPDATE_DELIVERY = """
local P, member, op = ARGV[1], ARGV[2], ARGV[3]
local key = P .. 'd:' .. member
if redis.call('EXISTS', key) == 0 then return 0 end
local sink = redis.call('HGET', key, 'sink')
local status = redis.call('HGET', key, 'status')
redis.call('HINCRBY', key, 'attempts', ARGV[4])
if ARGV[8] ~= '' then redis.call('HSET', key, 'updated_at', ARGV[8]) end
if op == 'retry' then
  redis.call('HSET', key, 'next_at', ARGV[5], 'last_error', ARGV[6])
  if status == 'pending' then redis.call('ZADD', P .. 'pending:' .. sink, ARGV[5], member) end
  return 1
end
redis.call('ZREM', P .. 'pending:' .. sink, member)
redis.call('ZREM', P .. 'status:' .. status, member)
redis.call('ZADD', P .. 'status:' .. op, redis.call('HGET', key, 'seq'), member)
redis.call('HSET', key, 'status', op)
if op == 'done' then
  redis.call('HSET', key, 'ref', ARGV[7])
else
  redis.call('HSET', key, 'last_error', ARGV[6])
end
return 1
"""

# ARGV: prefix, now. Every parked delivery becomes pending, due now, with its attempts reset.
REQUEUE_PARKED = """
local P = ARGV[1]
local parked = redis.call('ZRANGE', P .. 'status:parked', 0, -1, 'WITHSCORES')
for i = 1, #parked, 2 do
  local member, seq = parked[i], parked[i + 1]
  local key = P .. 'd:' .. member
  local sink = redis.call('HGET', key, 'sink')
  redis.call('HSET', key, 'status', 'pending', 'next_at', ARGV[2], 'attempts', 0)
  redis.call('ZADD', P .. 'pending:' .. sink, ARGV[2], member)
  redis.call('ZADD', P .. 'status:pending', seq, member)
end
redis.call('DEL', P .. 'status:parked')
return #parked / 2
"""

# ARGV: prefix, before, batch. Forgets up to `batch` items last seen before `before`; returns how many.
PRUNE_SEEN = """
local P = ARGV[1]
local keys = redis.call('ZRANGEBYSCORE', P .. 'seen:last', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #keys == 0 then return 0 end
redis.call('HDEL', P .. 'seen', unpack(keys))
redis.call('SREM', P .. 'seen:flagged', unpack(keys))
redis.call('ZREM', P .. 'seen:last', unpack(keys))
return #keys
"""
