"""Where key x model cool-downs are kept: this worker's memory, a file every worker of the host shares,
or Redis for every instance (with the host's file beside it, and in its place while Redis is down).

A store holds fingerprints only, never a key. Stores take the time from their caller (the pool's clock),
so tests move it without sleeping; a rest is kept until its `until`, and forgotten after."""
import json
import logging
import threading
import time
from dataclasses import dataclass

from ..storage.host_files import SharedFile

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 60.0  # while Redis is down, one warning a minute rather than one a read
_REDIS_TIMEOUT = 1.0  # seconds, per command: a dead Redis must not hold a request up for long
_REDIS_PREFIX = "gemini-proxy:cooldown:"
_REDIS_RETRY_SECONDS = 5.0  # while Redis is down, how often it is tried again: a dead host costs a timeout

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cooldowns (
    key_id TEXT NOT NULL, model TEXT NOT NULL, until REAL NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (key_id, model));
"""


@dataclass(frozen=True)
class CoolDown:
    key_id: str
    model: str
    until: float  # clock time
    reason: str


class MemoryRests:
    """This worker's own: a caller's own key, or a pool built without a shared store."""

    shared = False

    def __init__(self):
        self._rests = {}
        self._lock = threading.Lock()

    def put(self, cooldown, now):
        with self._lock:
            self._rests[(cooldown.key_id, cooldown.model)] = cooldown

    def read(self, now):
        with self._lock:
            for pair in [pair for pair, c in self._rests.items() if c.until <= now]:
                del self._rests[pair]
            return list(self._rests.values())

    def status(self):
        return {"shared_by": "worker", "reachable": True}


class FileRests:
    """The rests every worker of this host shares: a small SQLite file beside the database, opened as the
    host's other shared files are (storage.host_files), written in short transactions."""

    shared = True

    def __init__(self, path):
        self.path = path
        self._file = SharedFile(path, _SCHEMA)

    def put(self, cooldown, now):
        def work(connection):
            connection.execute("DELETE FROM cooldowns WHERE until <= ?", (now,))
            connection.execute(
                "INSERT INTO cooldowns (key_id, model, until, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key_id, model) DO UPDATE SET until = excluded.until, reason = excluded.reason",
                (cooldown.key_id, cooldown.model, cooldown.until, cooldown.reason))

        self._file.transaction(work)

    def read(self, now):
        found = self._file.read(lambda connection: connection.execute(
            "SELECT key_id, model, until, reason FROM cooldowns WHERE until > ?", (now,)).fetchall())
        return [CoolDown(*row) for row in found]

    def status(self):
        return {"shared_by": "host", "reachable": True}


class RedisRests:
    """The rests every instance shares: one Redis key per fingerprint x model, living as long as the rest.
    Every rest is written to the host's file too, so this host keeps what it learnt while Redis is down,
    and keeps honouring it once Redis is back."""

    shared = True

    def __init__(self, url, host, clock=time.monotonic, prefix=_REDIS_PREFIX):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT)
        self.host, self.clock, self.prefix = host, clock, prefix
        self._errors = (redis.RedisError, OSError)
        self._down_since = None  # clock time of the first failure in a row
        self._warned_at = None
        self._failed_at = None  # clock time of the last failure; Redis is tried again _REDIS_RETRY_SECONDS after

    def put(self, cooldown, now):
        self.host.put(cooldown, now)
        if self._holding_off():
            return
        self._publish([cooldown], now)

    def _publish(self, cooldowns, now):
        try:
            for cooldown in cooldowns:
                ttl_ms = int((cooldown.until - now) * 1000)
                if ttl_ms > 0:
                    value = json.dumps({"key_id": cooldown.key_id, "model": cooldown.model,
                                        "until": cooldown.until, "reason": cooldown.reason})
                    self.redis.set(f"{self.prefix}{cooldown.key_id}:{cooldown.model}", value, px=ttl_ms)
        except self._errors:
            self._failed("writing a rest")
            return
        self._answered()

    def read(self, now):
        rests = {(c.key_id, c.model): c for c in self.host.read(now)}
        if self._holding_off():
            return list(rests.values())
        try:
            names = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
            values = self.redis.mget(names) if names else []
        except self._errors:
            self._failed("reading rests")
            return list(rests.values())
        if self._answered():  # what this host learnt meanwhile, for the other instances
            self._publish(rests.values(), now)
        for value in values:
            if value is None:  # expired between the scan and the read
                continue
            cooldown = CoolDown(**json.loads(value))
            known = rests.get((cooldown.key_id, cooldown.model))
            if cooldown.until > now and (known is None or cooldown.until > known.until):
                rests[(cooldown.key_id, cooldown.model)] = cooldown
        return list(rests.values())

    def status(self):
        if self._down_since is None:
            return {"shared_by": "instances", "reachable": True}
        return {"shared_by": "host", "reachable": False}

    def _holding_off(self):
        """Whether Redis failed so lately that it is not worth a try yet."""
        return self._failed_at is not None and 0 <= self.clock() - self._failed_at < _REDIS_RETRY_SECONDS

    def _failed(self, what):
        now = self.clock()
        self._failed_at = now
        if self._down_since is None:
            self._down_since = now
        if self._warned_at is None or now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("cool-down storage (Redis) unreachable (%s): key cool-downs are shared by this host's "
                        "workers only meanwhile", what, exc_info=True)

    def _answered(self):
        """Note that Redis answered; True when it had been down."""
        was_down = self._down_since is not None
        if was_down:
            log.warning("cool-down storage (Redis) answers again: key cool-downs are shared by every instance")
        self._down_since = self._warned_at = self._failed_at = None
        return was_down


def make_store(url, host_path):
    """Redis when `url` is set, else the host's file at `host_path` (opened at first use: while its folder is
    missing, like the database's, each worker keeps its rests in memory)."""
    host = FileRests(host_path)
    return RedisRests(url, host) if url else host
