"""Label values for /metrics from a bounded set: the configured ones, a few learned from upstream's answers,
and `other` for anything else a client can make up (each value is a series in every scrape, for ever)."""

OTHER = "other"
NONE = "-"  # no value: a request that never named a model
MAX_LEARNED = 50  # values a label learns beyond the configured ones, per worker


class BoundedLabel:
    """Maps a value to itself if configured or learned, else to OTHER. A value is learned only when the
    caller says it came with an answer (`learn`), so names upstream refuses never take a place."""

    def __init__(self, known=(), limit=MAX_LEARNED):
        self.known = frozenset(known) | {NONE}
        self.limit = limit
        self.learned = set()

    def __call__(self, value, learn=False):
        if not value:
            return NONE
        if value in self.known or value in self.learned:
            return value
        if learn and len(self.learned) < self.limit:
            self.learned.add(value)
            return value
        return OTHER
