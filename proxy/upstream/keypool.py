"""The pool of server keys, with a cool-down per key x model after a quota error."""
import hashlib
import itertools
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Gemini's daily quotas reset at midnight Pacific time.
_QUOTA_DAY_ZONE = ZoneInfo("America/Los_Angeles")


def fingerprint(key):
    """A short, stable, non-reversible name for a key, safe for logs and the database."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def seconds_until_daily_reset(now):
    local = datetime.fromtimestamp(now, _QUOTA_DAY_ZONE)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds()


@dataclass(frozen=True)
class CoolDown:
    key_id: str
    model: str
    until: float  # clock time
    reason: str


class KeyPool:
    """Hands out keys round-robin, skipping any key resting for the model asked for."""

    def __init__(self, keys, clock=time.time, on_rest=None):
        self.keys = list(dict.fromkeys(keys))
        self.clock = clock
        self.on_rest = on_rest  # told (model, reason) whenever a pair is put to rest
        self._ids = {key: fingerprint(key) for key in self.keys}
        self._resting = {}  # (key, model) -> CoolDown
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
        with self._lock:
            return [key for key in ordered if not self._is_resting(key, model, now)]

    def rest(self, key, model, seconds, reason):
        until = self.clock() + max(0.0, seconds)
        with self._lock:
            self._resting[(key, model)] = CoolDown(self.key_id(key), model, until, reason)
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
        with self._lock:
            waits = []
            for key in self.keys:
                rest = self._resting.get((key, model))
                waits.append(max(0.0, rest.until - now) if rest else 0.0)
        return min(waits, default=0.0)

    def cooldowns(self):
        """The cool-downs in force now, for health and analytics."""
        now = self.clock()
        with self._lock:
            return [c for c in self._resting.values() if c.until > now]

    def _is_resting(self, key, model, now):
        rest = self._resting.get((key, model))
        if rest is None:
            return False
        if rest.until <= now:
            del self._resting[(key, model)]
            return False
        return True
