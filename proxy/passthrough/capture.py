"""The copy of a body the pass-through keeps while relaying it: its head for storage, its tail for usage."""
from collections import deque

_TAIL_CHUNKS = 16  # kept past the cap so the last usage metadata is never lost


class Capture:
    """Keeps the head of a body up to `cap` bytes for storage, and its last chunks for parsing."""

    def __init__(self, cap):
        self.cap = cap
        self.head = []
        self.head_bytes = 0
        self.tail = deque(maxlen=_TAIL_CHUNKS)
        self.total = 0

    def add(self, chunk):
        self.total += len(chunk)
        if self.head_bytes < self.cap:
            piece = chunk[: self.cap - self.head_bytes]
            self.head.append(piece)
            self.head_bytes += len(piece)
        self.tail.append(chunk)

    @property
    def truncated(self):
        return self.total > self.head_bytes

    def stored(self):
        return b"".join(self.head)

    def parse_text(self):
        """The text to read usage from: the whole body when it was kept whole, else its last chunks."""
        raw = self.stored() if not self.truncated else b"".join(self.tail)
        return raw.decode("utf-8", errors="replace")
