"""Where cached answers live: the database (default) or Redis; compressed, TTL-bound, LRU-capped."""
import json
import logging
import time
import zlib
from datetime import datetime, timezone

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import CacheEntry, db

from ..compression import compress
from ..storage.sqlite_turns import WRITE_LOCK_PATIENCE

log = logging.getLogger(__name__)


# How long a cache write waits for SQLite's write lock (seconds): the busy timeout is for records, which
# must not be lost; a cache entry may.
_BRIEF_WAIT = {WRITE_LOCK_PATIENCE: 0.05}


def _pack(answer):
    return compress(json.dumps(answer).encode())


def _unpack(blob):
    return json.loads(zlib.decompress(blob))


class DatabaseStore:
    def __init__(self, ttl, max_entries, clock=time.time):
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock

    def _now(self):
        return datetime.fromtimestamp(self.clock(), timezone.utc).replace(tzinfo=None)

    def get(self, key):
        try:
            entry = db.session.execute(select(CacheEntry.id, CacheEntry.body, CacheEntry.expires_at)
                                       .where(CacheEntry.key == key)).first()
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("cache read failed; serving from upstream", exc_info=True)
            return None
        if entry is None:
            return None
        now = self._now()
        if entry.expires_at <= now:
            self._keep_books(delete(CacheEntry).where(CacheEntry.id == entry.id))
            return None
        self._keep_books(update(CacheEntry).where(CacheEntry.id == entry.id)
                         .values(last_used_at=now, hits=CacheEntry.hits + 1))
        return _unpack(entry.body)

    @staticmethod
    def _keep_books(statement):
        """An expired entry's removal or a hit's count: neither need happen now, so neither waits for the
        write lock long, and the hit is served either way."""
        try:
            db.session.execute(statement, execution_options=_BRIEF_WAIT)
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.info("cache bookkeeping skipped: the database is busy", exc_info=True)

    def put(self, key, model, answer):
        now = self._now()
        try:
            # An entry may be lost, so it waits no longer than a hit's books for the write lock.
            db.session.execute(delete(CacheEntry).where(CacheEntry.key == key), execution_options=_BRIEF_WAIT)
            db.session.add(CacheEntry(key=key, model=model, body=_pack(answer), created_at=now, last_used_at=now,
                                      expires_at=datetime.fromtimestamp(self.clock() + self.ttl, timezone.utc)
                                      .replace(tzinfo=None)))
            db.session.flush()
            overflow = db.session.execute(select(func.count()).select_from(CacheEntry)).scalar_one() - self.max_entries
            if overflow > 0:
                oldest = select(CacheEntry.id).order_by(CacheEntry.last_used_at, CacheEntry.id).limit(overflow)
                db.session.execute(delete(CacheEntry).where(CacheEntry.id.in_(oldest)))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # another worker stored the same answer first
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("cache write failed; the answer was served, not cached", exc_info=True)

    def clear(self):
        count = db.session.execute(delete(CacheEntry)).rowcount
        db.session.commit()
        return count


class RedisStore:
    """Shared by every instance: entries expire by Redis TTL; a sorted set keeps the LRU order."""

    def __init__(self, url, ttl, max_entries, clock=time.time):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self.prefix = "gemini-proxy:cache:"
        self.lru = self.prefix + "lru"

    def get(self, key):
        import redis

        try:
            blob = self.redis.get(self.prefix + key)
            if blob is None:
                return None
            self.redis.zadd(self.lru, {key: self.clock()})
            return _unpack(blob)
        except redis.RedisError:
            log.warning("cache read failed; serving from upstream", exc_info=True)
            return None

    def put(self, key, model, answer):
        import redis

        try:
            pipe = self.redis.pipeline()
            pipe.set(self.prefix + key, _pack(answer), ex=max(1, int(self.ttl)))
            pipe.zadd(self.lru, {key: self.clock()})
            pipe.zcard(self.lru)
            size = pipe.execute()[-1]
            if size > self.max_entries:
                evicted = [k.decode() for k, _ in self.redis.zpopmin(self.lru, size - self.max_entries)]
                if evicted:
                    self.redis.delete(*(self.prefix + k for k in evicted))
        except redis.RedisError:
            log.warning("cache write failed; the answer was served, not cached", exc_info=True)

    def clear(self):
        keys = list(self.redis.scan_iter(self.prefix + "*"))
        if keys:
            self.redis.delete(*keys)
        return max(0, len(keys) - 1)


def make_store(config):
    ttl, cap = config["CACHE_TTL_SECONDS"], config["CACHE_MAX_ENTRIES"]
    url = config["CACHE_STORAGE_URL"]
    return RedisStore(url, ttl, cap) if url.startswith(("redis://", "rediss://")) else DatabaseStore(ttl, cap)
