"""Daily token quotas: a request holds an estimate before it goes upstream, and settles it with its
real usage once recorded, in a ledger every worker (and, with Redis, every instance) shares."""
import logging
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from flask import current_app, g, request
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from models import RequestLog, db

from ..errors import TokenQuotaExceeded
from ..storage.database import local_path
from ..wire import jsonbody, routes
from .estimate import estimate_tokens
from .ledger import LocalLedger

log = logging.getLogger(__name__)

_FLOOR_SECONDS = 1.0  # how often a worker reads a client's recorded usage into the ledger
_PENDING_PRUNE_AT = 1024  # requests awaiting settlement before the long-dead ones are forgotten
_HELD_RETRY_SECONDS = 1  # a quota held by requests in flight frees up as soon as they finish
_WARN_EVERY_SECONDS = 60.0  # while Redis is down, one warning a minute rather than one a request


class Quotas:
    """The holds this worker made, by request id, and the ledger(s) they were made in."""

    def __init__(self, local, shared=None, hold_seconds=300.0, clock=time.monotonic):
        self.local, self.shared = local, shared
        self.hold_seconds, self.clock = hold_seconds, clock
        self._pending = {}  # request id -> [(ledger, client id, day, hold, tokens, since)]
        self._floors = {}  # (client id, day) -> when this worker last read the database for it
        self._warned_at = {}  # what failed -> when it was last logged

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

    def _shared_failed(self, what):
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
        except self._failures():
            self._shared_failed("raising the floor")
            self.local.floor(client_id, day, recorded)

    def reserve(self, client_id, day, request_id, estimate, quota):
        ledger = self.shared or self.local
        try:
            reservation = ledger.reserve(client_id, day, estimate, quota, self.hold_seconds)
        except self._failures():
            self._shared_failed("reserving")
            ledger = self.local
            reservation = ledger.reserve(client_id, day, estimate, quota, self.hold_seconds)
        if reservation.granted:
            if len(self._pending) >= _PENDING_PRUNE_AT:
                self._forget_dead()
            self._pending.setdefault(request_id, []).append(
                (ledger, client_id, day, reservation.hold, reservation.tokens, self.clock()))
        return reservation

    def settle(self, client_id, request_id, tokens):
        """The request's real tokens replace its hold; a request that held nothing is not counted here
        (no quota applied to it), the database's floor counts it if one applies later."""
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


def seconds_until_utc_midnight(now=None):
    now = now or datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def recorded_today(client_id, day_start):
    """The client's tokens the database has recorded since UTC midnight."""
    query = select(func.coalesce(func.sum(RequestLog.total_tokens), 0)).where(
        RequestLog.client_id == client_id, RequestLog.created_at >= day_start,
        # Answers from the cache cost Gemini nothing, so they spend no quota.
        (RequestLog.cache_status.is_(None)) | (RequestLog.cache_status != "HIT"))
    return db.session.execute(query).scalar_one()


def _is_generation():
    """Whether this request can spend output tokens: the /gemini APIs' POSTs, and the native generation
    calls (a path that does not parse is treated as one: the pass-through refuses it, and it settles at 0)."""
    if request.method != "POST":
        return False
    if g.area == "api":
        return True
    try:
        route = routes.parse(routes.raw_path(request.environ) or request.path)
    except routes.BadRoute:
        return True
    return not route.prefix and (route.generation or (route.openai and route.segments[1:] == ("chat", "completions")))


def _estimate():
    body = request.get_data(cache=True)  # cached: the resource and the pass-through read the same bytes
    try:
        payload = jsonbody.loads(body) if body else None
    except jsonbody.BadJson:
        payload = None  # refused as a 400 further on, which settles at 0
    return estimate_tokens(body, payload, current_app.config["MAX_OUTPUT_TOKENS_LIMIT"])


def check_token_quota():
    """before_request: hold this request's estimated tokens against its client's daily quota, or refuse
    it when nothing is left; count_usage settles the hold once the request is recorded."""
    client = g.get("client")
    if client is None or g.get("area") not in ("api", "native") or request.method == "OPTIONS":
        return
    quota = client.daily_token_quota if client.daily_token_quota is not None else \
        current_app.config["DAILY_TOKEN_QUOTA"]
    if not quota:
        return
    quotas = current_app.extensions["quotas"]
    day_start = g.started_at.replace(hour=0, minute=0, second=0, microsecond=0)
    day = day_start.date().isoformat()
    try:
        if quotas.due_for_floor(client.id, day):
            try:
                quotas.floor(client.id, day, recorded_today(client.id, day_start))
            except SQLAlchemyError:  # the ledger holds the quota meanwhile
                db.session.rollback()
                quotas.warn("recorded usage unread (the database did not answer): the quota ledger holds it")
        reservation = quotas.reserve(client.id, day, g.request_id, _estimate() if _is_generation() else 0, quota)
    except sqlite3.Error:
        quotas.warn("token quota unchecked: the quota ledger did not answer")
        return
    if reservation.granted:
        return
    if reservation.used >= quota:
        raise TokenQuotaExceeded(
            f"The daily token quota of {quota} is used up ({reservation.used} tokens today, UTC).",
            retry_after=seconds_until_utc_midnight())
    raise TokenQuotaExceeded(
        f"The daily token quota of {quota} is held by requests in flight ({reservation.used} tokens used "
        f"today, {reservation.held} reserved); retry when they finish.", retry_after=_HELD_RETRY_SECONDS)


def count_usage(app, record):
    """Storage calls this with each finished request's record: its real tokens settle the hold it made."""
    quotas = app.extensions.get("quotas")
    if quotas is None or record.get("client_id") is None:
        return
    tokens = 0 if record.get("cache_status") == "HIT" else (record.get("total_tokens") or 0)
    try:
        quotas.settle(record["client_id"], record["request_id"], tokens)
    except sqlite3.Error:  # the hold expires by itself; never fail the record over it
        quotas.warn("token usage not settled: the quota ledger did not answer")
