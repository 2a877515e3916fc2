"""Open Live sessions per client in Redis (QUOTA_STORAGE_URL), counted for every instance: a sorted set
per client of session id -> expiry, which the process holding a session pushes on while it lives."""
import time

TTL_SECONDS = 60.0  # a session whose process died (no more heartbeats) stops counting after this
HEARTBEAT_SECONDS = 20.0  # how often a process pushes its sessions' expiry on: three tries per TTL
_TIMEOUT = 1.0  # seconds, per command: a dead Redis must not hold a session's setup up for long
_PREFIX = "gemini-proxy:live:"

# KEYS: the client's set. ARGV: now, limit (0: none), session id, its expiry, the set's TTL in seconds.
# Returns 1 when the session is counted, 0 when the client holds its limit already.
_OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisSessions:
    """The same count as the host's file, for every instance that names the same Redis. Each instance's
    clock sets the expiries, so instances' clocks must agree to well within TTL_SECONDS (NTP does)."""

    def __init__(self, url, clock=time.time, ttl=TTL_SECONDS, prefix=_PREFIX):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
        self.errors = (redis.RedisError, OSError)
        self.clock, self.ttl, self.prefix = clock, ttl, prefix
        self._open = self.redis.register_script(_OPEN)

    def _key(self, client_id):
        return f"{self.prefix}{'open' if client_id is None else client_id}"  # None: no client keys (open auth)

    def open(self, session_id, client_id, limit):
        now = self.clock()
        return bool(self._open(keys=[self._key(client_id)],
                               args=[now, int(limit), session_id, now + self.ttl, int(self.ttl * 2) + 1]))

    def close(self, session_id, client_id):
        self.redis.zrem(self._key(client_id), session_id)

    def refresh(self, sessions):
        """Push the expiry of `sessions` ({session id: client id}, this process's) on. A session whose
        entry expired meanwhile (Redis was away longer than the TTL) is counted again: it is still open."""
        if not sessions:
            return
        expiry = self.clock() + self.ttl
        pipe = self.redis.pipeline(transaction=False)
        for session_id, client_id in sessions.items():
            pipe.zadd(self._key(client_id), {session_id: expiry})
            pipe.expire(self._key(client_id), int(self.ttl * 2) + 1)
        pipe.execute()

    def count(self, client_id):
        return self.redis.zcount(self._key(client_id), f"({self.clock()}", "+inf")
