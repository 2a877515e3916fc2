"""This worker's side of the token quotas: which ledger holds what for each request in flight, and
falling back to this instance's own ledger while the shared one (Redis) is unreachable."""
import logging
import os
import time

from ..storage.database import local_path
from .ledger import LocalLedger

log = logging.getLogger(__name__)

_FLOOR_SECONDS = 1.0  # how often a worker reads a client's recorded usage into the ledger
_PENDING_PRUNE_AT = 1024  # requests awaiting settlement before the long-dead ones are forgotten
_WARN_EVERY_SECONDS = 60.0  # while Redis is down, one warning a minute rather than one a request


class QuotaHolds:
    """The holds this worker made, by request id, and the ledger(s) they were made in."""

    def __init__(self, local, shared=None, hold_seconds=300.0, clock=time.monotonic):
        self.local, self.shared = local, shared
        self.hold_seconds, self.clock = hold_seconds, clock
        self._pending = {}  # request id -> [(ledger, client id, day, hold, tokens, since)]
        self._floors = {}  # (client id, day) -> when this worker last read the database for it
        self._warned_at = {}  # what failed -> when it was last logged
        self._shared_answered = True  # how the shared ledger's last call went, for /health
        self._prune_at = _PENDING_PRUNE_AT  # doubles while that many are really in flight: pruning is O(n)

    @classmethod
    def from_app(cls, app):
        path = local_path(app, "quota-ledger")
        if os.path.dirname(path) == app.instance_path:  # beside a SQLite file, its folder is the database's
            os.makedirs(app.instance_path, exist_ok=True)
        url = app.config["QUOTA_STORAGE_URL"]
        shared = None
        if url:
            from .ledger_redis import RedisLedger
            shared = RedisLedger(url)
        return cls(LocalLedger(path), shared, app.config["QUOTA_HOLD_SECONDS"])

    def _failures(self):
        if self.shared is None:
            return ()
        import redis
        return (redis.RedisError,)

    def warn(self, message, exc_info=True):
        """Log `message` at most once a minute: a store that is down fails every request."""
        now = self.clock()
        if now - self._warned_at.get(message, -_WARN_EVERY_SECONDS) >= _WARN_EVERY_SECONDS:
            self._warned_at[message] = now
            log.warning(message, exc_info=exc_info)

    def sharing(self):
        """Who shares the quota's holds: "instances" (Redis), or "host" (the file beside the database: no
        Redis, or Redis did not answer the last call), and whether the configured store answers."""
        if self.shared is None:
            return {"shared_by": "host", "reachable": True}
        return {"shared_by": "instances" if self._shared_answered else "host", "reachable": self._shared_answered}

    def _shared_failed(self, what):
        self._shared_answered = False
        self.warn(f"quota storage unreachable ({what}): the quota holds for this instance alone meanwhile")

    def due_for_floor(self, client_id, day):
        now = self.clock()
        last = self._floors.get((client_id, day))
        if last is not None and now - last < _FLOOR_SECONDS:
            return False
        if len(self._floors) > _PENDING_PRUNE_AT:
            self._floors.clear()
        self._floors[(client_id, day)] = now
        return True

    def floor(self, client_id, day, recorded):
        try:
            (self.shared or self.local).floor(client_id, day, recorded)
            self._shared_answered = True
        except self._failures():
            self._shared_failed("raising the floor")
            self.local.floor(client_id, day, recorded)

    def reserve(self, client_id, day, request_id, estimate, quota):
        ledger = self.shared or self.local
        try:
            reservation = ledger.reserve(client_id, day, estimate, quota, self.hold_seconds)
            self._shared_answered = True
        except self._failures():
            self._shared_failed("reserving")
            ledger = self.local
            reservation = ledger.reserve(client_id, day, estimate, quota, self.hold_seconds)
        if reservation.granted:
            if len(self._pending) >= self._prune_at:
                self._forget_dead()
                self._prune_at = max(_PENDING_PRUNE_AT, 2 * len(self._pending))
            self._pending.setdefault(request_id, []).append(
                (ledger, client_id, day, reservation.hold, reservation.tokens, self.clock()))
        return reservation

    def used(self, client_id, day):
        """Tokens settled and held for the client today: what a running Live session weighs its own against."""
        try:
            used, held = (self.shared or self.local).usage(client_id, day)
            self._shared_answered = True
        except self._failures():
            self._shared_failed("reading usage")
            used, held = self.local.usage(client_id, day)
        return used + held

    def spend(self, client_id, day, tokens):
        """Count tokens at once, with no hold: a Live session's, as each turn reports them."""
        try:
            (self.shared or self.local).settle(client_id, day, None, tokens)
            self._shared_answered = True
        except self._failures():
            self._shared_failed("spending")
            self.local.settle(client_id, day, None, tokens)

    def settle(self, client_id, request_id, tokens):
        """The request's real tokens replace its hold. A request this worker reserved nothing for (no
        quota applied to it) is not counted here; the database's floor counts it if one applies later."""
        holds = self._pending.get(request_id)
        mine = [h for h in holds or () if h[1] == client_id]
        if not mine:
            return
        # Client-chosen request ids may repeat: release the smallest hold, which never frees more than it should.
        entry = min(mine, key=lambda h: h[4])
        holds.remove(entry)
        if not holds:
            del self._pending[request_id]
        ledger, _, day, hold, _, _ = entry
        try:
            ledger.settle(client_id, day, hold, tokens)
        except self._failures():
            self._shared_failed("settling")
            self.local.settle(client_id, day, None, tokens)

    def _forget_dead(self):
        """Holds whose request never settled (it died) expire in the ledger; forget them here too."""
        cutoff = self.clock() - self.hold_seconds
        for request_id in list(self._pending):
            alive = [h for h in self._pending[request_id] if h[5] > cutoff]
            if alive:
                self._pending[request_id] = alive
            else:
                del self._pending[request_id]
