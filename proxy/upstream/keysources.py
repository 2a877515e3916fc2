"""Which keys one call may use: the pool's in turn, one pinned key, or the caller's own."""
from .keypool import KeyPool

NONE_LEFT = object()  # KeySource.pick: every usable key rests for this model

# A key source answers pick(slot) with (key, its fingerprint) or NONE_LEFT; tells whether its keys may
# rest (restable); and, for a pool, rests them and says when one returns.


class PoolKeys:
    """Keys drawn from a pool per attempt; a key that fails for quota or is rejected rests there."""

    restable = True

    def __init__(self, pool):
        self.pool = pool

    def __len__(self):
        return len(self.pool)

    def pick(self, slot):
        keys = self.pool.candidates(slot)
        return (keys[0], self.pool.key_id(keys[0])) if keys else NONE_LEFT

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
        self.chosen = (key, key_id)

    def __len__(self):
        return 1

    def pick(self, slot):
        return self.chosen

    def seconds_until_available(self, slot):
        return 0.0


CALLERS_OWN = FixedKey(None)  # the pass-through's client key: it travels in the call, and is not fingerprinted


def own_key(api_key, clock):
    """A caller's own key as a pool of one, so a 429 or a rejection rests it for the rest of the call."""
    return PoolKeys(KeyPool([api_key], clock=clock))
