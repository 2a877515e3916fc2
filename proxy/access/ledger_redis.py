"""The token-quota ledger in Redis (QUOTA_STORAGE_URL), shared by every instance: atomic Lua scripts."""
import time
import uuid

from .ledger import Reservation

_TTL = 3 * 86400  # seconds a client's day stays in Redis: past midnight, for requests settling late

# KEYS: used, holds (sorted set: hold -> expiry), tokens (hash: hold -> tokens)
# ARGV: now, estimate, quota, expires, hold, ttl. Returns {granted, tokens, used, held}.
_RESERVE = """
local now, estimate, quota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('HDEL', KEYS[3], unpack(dead))
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = 0
for _, tokens in ipairs(redis.call('HVALS', KEYS[3])) do held = held + tonumber(tokens) end
if estimate <= 0 then
  if used < quota then return {1, 0, used, held} end
  return {0, 0, used, held}
end
local left = quota - used - held
if left <= 0 then return {0, 0, used, held} end
local tokens = math.max(0, math.min(estimate, left))
if tokens > 0 then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
  redis.call('HSET', KEYS[3], ARGV[5], tokens)
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return {1, tokens, used, held}
"""
# ARGV: hold ('' for none), tokens, ttl
_SETTLE = """
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if tonumber(ARGV[2]) ~= 0 then  -- below 0: a batch's estimate given back (access.batch_budgets.settle_batch)
  redis.call('INCRBY', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""
# ARGV: recorded, ttl
_FLOOR = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


class RedisLedger:
    """The same ledger as LocalLedger, for every instance that names the same Redis."""

    def __init__(self, url, clock=time.time, prefix="gemini-proxy:quota:"):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.clock, self.prefix = clock, prefix
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)
        self._floor = self.redis.register_script(_FLOOR)

    def _keys(self, client_id, day):
        base = f"{self.prefix}{{{client_id}:{day}}}:"  # one hash slot per client and day (Redis Cluster)
        return [base + "used", base + "holds", base + "tokens"]

    def reserve(self, client_id, day, estimate, quota, hold_seconds):
        now, hold = self.clock(), uuid.uuid4().hex
        granted, tokens, used, held = self._reserve(
            keys=self._keys(client_id, day), args=[now, int(estimate), int(quota), now + hold_seconds, hold, _TTL])
        return Reservation(bool(granted), hold if tokens else None, int(tokens), int(used), int(held))

    def settle(self, client_id, day, hold, tokens):
        self._settle(keys=self._keys(client_id, day), args=[hold or "", int(tokens or 0), _TTL])

    def floor(self, client_id, day, recorded):
        self._floor(keys=self._keys(client_id, day), args=[int(recorded), _TTL])

    def usage(self, client_id, day):
        used_key, holds_key, tokens_key = self._keys(client_id, day)
        live = self.redis.zrangebyscore(holds_key, self.clock(), "+inf")
        held = sum(int(t) for t in self.redis.hmget(tokens_key, live) if t is not None) if live else 0
        return int(self.redis.get(used_key) or 0), held
