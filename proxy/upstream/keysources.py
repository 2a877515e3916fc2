"""Which keys one call may use: the pool's in turn, one pinned key, or the caller's own."""
from .keypool import KeyPool

NONE_LEFT = object()  # KeySource.pick: every usable key rests for this model


class PoolKeys:
    """Keys drawn from a pool per attempt; a key that fails for quota or is rejected rests there."""

    restable = True

    def __init__(self, pool):
        self.pool = pool

    def __len__(self):
        return len(self.pool)

    def pick(self, slot):
        keys = self.pool.candidates(slot)
        return keys[0] if keys else NONE_LEFT

    def key_id(self, key):
        return self.pool.key_id(key)

    def rest_for_quota(self, key, slot, failure, default_seconds):
        self.pool.rest_for_quota(key, slot, failure, default_seconds)

    def rest(self, key, slot, seconds, reason):
        self.pool.rest(key, slot, seconds, reason)

    def seconds_until_available(self, slot):
        return self.pool.seconds_until_available(slot)


class FixedKey:
    """One key for every attempt, never put to rest: an upload's pinned server key (its session belongs
    to that key's project), or None for the caller's own key sent on the way it came."""

    restable = False

    def __init__(self, key, key_id=None):
        self.key, self._key_id = key, key_id

    def __len__(self):
        return 1

    def pick(self, slot):
        return self.key

    def key_id(self, key):
        return self._key_id

    def seconds_until_available(self, slot):
        return 0.0


def own_key(api_key, clock):
    """A caller's own key as a pool of one, so a 429 or a rejection rests it for the rest of the call."""
    return PoolKeys(KeyPool([api_key], clock=clock))
