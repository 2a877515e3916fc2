"""The pool of server keys, with a cool-down per key x model after a quota error."""
import hashlib
import itertools
import logging
import sqlite3
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .cooldowns import CoolDown, MemoryRests

log = logging.getLogger(__name__)

# Gemini's daily quotas reset at midnight Pacific time.
_QUOTA_DAY_ZONE = ZoneInfo("America/Los_Angeles")
_WARN_EVERY_SECONDS = 60.0


def fingerprint(key):
    """A short, stable, non-reversible name for a key, safe for logs and the database."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def seconds_until_daily_reset(now):
    local = datetime.fromtimestamp(now, _QUOTA_DAY_ZONE)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds()


class KeyPool:
    """Hands out keys round-robin, skipping any key resting for the model asked for.

    The rests live in `store` (this worker's memory unless a shared one is given). A shared store is read
    at most once per `refresh_seconds` of the clock, and written through at once when a rest is learnt:
    a rest one worker learns spares the others the call within that time."""

    def __init__(self, keys, clock=time.time, on_rest=None, store=None, refresh_seconds=1.0):
        self.keys = list(dict.fromkeys(keys))
        self.clock = clock
        self.on_rest = on_rest  # told (model, reason) whenever a pair is put to rest
        self.store = store if store is not None else MemoryRests()
        self.refresh_seconds = refresh_seconds
        self._ids = {key: fingerprint(key) for key in self.keys}
        self._own = {}  # (key id, model) -> CoolDown: what this worker learnt, kept should the store refuse it
        self._known = {}  # (key id, model) -> CoolDown: the store's, as last read
        self._read_at = None
        self._warned_at = {}  # message -> clock time it was last logged
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.keys)

    def key_id(self, key):
        return self._ids.get(key) or fingerprint(key)

    def key_with_id(self, key_id):
        """The pool's key of that fingerprint, or None."""
        return next((key for key, known in self._ids.items() if known == key_id), None)

    def candidates(self, model):
        """Keys usable for `model` now, starting at the next in turn so load spreads."""
        if not self.keys:
            return []
        now = self.clock()
        start = next(self._turn) % len(self.keys)
        ordered = self.keys[start:] + self.keys[:start]
        resting = self._resting(now)
        return [key for key in ordered if (self._ids[key], model) not in resting]

    def rest(self, key, model, seconds, reason):
        now = self.clock()
        cooldown = CoolDown(self.key_id(key), model, now + max(0.0, seconds), reason)
        with self._lock:
            self._own[(cooldown.key_id, model)] = cooldown
            self._known[(cooldown.key_id, model)] = cooldown
        try:
            self.store.put(cooldown, now)
        except sqlite3.Error:  # the host's file refuses: this worker still honours the rest
            self._warn("could not share a cool-down: this worker keeps it to itself")
        if self.on_rest is not None:
            self.on_rest(model, reason)

    def rest_for_quota(self, key, model, failure, default_seconds):
        """Rest until the daily reset for a per-day quota, else for RetryInfo's delay."""
        if failure.daily_quota:
            self.rest(key, model, seconds_until_daily_reset(self.clock()), "quota_per_day")
        else:
            seconds = failure.retry_delay if failure.retry_delay is not None else default_seconds
            self.rest(key, model, seconds, "quota")

    def seconds_until_available(self, model):
        """How long until some key can serve `model` again (0 if one can now)."""
        now = self.clock()
        resting = self._resting(now)
        waits = []
        for key in self.keys:
            rest = resting.get((self._ids[key], model))
            waits.append(rest.until - now if rest else 0.0)
        return min(waits, default=0.0)

    def cooldowns(self):
        """The cool-downs of this pool's keys in force now, for health and analytics."""
        mine = set(self._ids.values())  # instances sharing Redis may hold other keys
        return [c for c in self._resting(self.clock()).values() if c.key_id in mine]

    def sharing(self):
        """Who shares these cool-downs: worker, host or instances, and whether the shared store answers."""
        return self.store.status()

    def _resting(self, now):
        """(key id, model) -> CoolDown for the rests in force at `now`: the store's, read again when the copy
        is older than refresh_seconds, and this worker's own."""
        with self._lock:
            fresh = self._read_at is not None and 0 <= now - self._read_at < self.refresh_seconds
        if not fresh:
            try:
                read = {(c.key_id, c.model): c for c in self.store.read(now)}
            except sqlite3.Error:
                self._warn("could not read the shared cool-downs: this worker knows its own only")
                read = None
            with self._lock:
                if read is not None:
                    self._known = read
                self._read_at = now
        with self._lock:
            for pair in [pair for pair, c in self._own.items() if c.until <= now]:
                del self._own[pair]
            resting = {pair: c for pair, c in self._known.items() if c.until > now}
            for pair, mine in self._own.items():
                if pair not in resting or mine.until > resting[pair].until:
                    resting[pair] = mine
            return resting

    def _warn(self, message):
        """Log `message` at most once a minute: a store that refuses fails every attempt."""
        now = self.clock()
        last = self._warned_at.get(message)
        if last is None or not 0 <= now - last < _WARN_EVERY_SECONDS:
            self._warned_at[message] = now
            log.warning(message, exc_info=True)
