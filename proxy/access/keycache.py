"""What a worker has learned about client keys, so that a request does not ask the database.

Any process that changes a client (the admin API in any worker, the CLI) appends to a marker file beside
the database; every worker checks the marker on each look-up (one stat) and forgets what it knew
when it moved, so a revoked key stops at once on this host. Workers on other hosts sharing a networked
database learn of a change within `seconds`."""
import os
import time

_MAX_ENTRIES = 10_000  # keys remembered, found or not; beyond that the cache starts afresh


class KeyCache:
    def __init__(self, marker, seconds, clock=time.monotonic):
        self.marker = marker
        self.seconds = seconds
        self.clock = clock
        self._entries = {}  # key digest -> (generation, Caller or None)
        self._issued = None  # (generation, bool): whether any client key exists
        self._generation = 0
        self._marker_time = self._marker_stat()
        self._since = clock()

    def _marker_stat(self):
        try:
            stat = os.stat(self.marker)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _current(self):
        """This worker's generation of knowledge, moved on when the marker moved or it grew old."""
        marker_time = self._marker_stat()
        now = self.clock()
        if marker_time != self._marker_time or now - self._since >= self.seconds:
            self._marker_time, self._since = marker_time, now
            self._generation += 1
        return self._generation

    def lookup(self, digest):
        """(fresh, caller): caller is the last known answer even when it is no longer fresh."""
        generation, caller = self._entries.get(digest, (None, None))
        return generation is not None and generation == self._current(), caller

    def store(self, digest, caller):
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (self._current(), caller)

    def issued(self):
        """(fresh, whether any key was issued)."""
        if self._issued is None:
            return False, False
        generation, issued = self._issued
        return issued or generation == self._current(), issued  # once issued, keys stay required

    def store_issued(self, issued):
        self._issued = (self._current(), issued or bool(self._issued and self._issued[1]))

    def changed(self):
        """A client was created, rotated or revoked: tell every worker on this host."""
        try:
            os.makedirs(os.path.dirname(self.marker) or ".", exist_ok=True)
            with open(self.marker, "ab") as marker:
                marker.write(b".")  # its size moves even when two changes fall within one clock tick
        except OSError:
            pass  # other workers fall back on `seconds`
        self._generation += 1
