"""The frames of a Live session as its record keeps them: one JSON line per message, media replaced by
their sizes, up to a cap (LOG_BODY_MAX_BYTES; none at all when LOG_BODIES is off)."""
import json


class FrameLog:
    def __init__(self, cap):
        self.cap = cap
        self.lines = []
        self.size = 0
        self.truncated = False

    def _add(self, side, text):
        if not self.cap:
            return
        line = f'{{"{side}":{text}}}\n'
        if self.size + len(line) > self.cap:
            self.truncated = True
            return
        self.lines.append(line)
        self.size += len(line)

    def client(self, message):
        self._add("client", json.dumps(message, separators=(",", ":")))

    def client_text(self, text):
        self._add("client", text)

    def server_text(self, text):
        self._add("server", text)

    def stored(self):
        return "".join(self.lines).encode()
