"""Daily token quotas: a request holds an estimate before it goes upstream, and settles it with its
real usage once recorded, in a ledger every worker (and, with Redis, every instance) shares."""
import sqlite3
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from models import RequestLog, db

from ..errors import TokenQuotaExceeded
from ..requestctx import API, current as current_state, current_application, current_request
from ..wire import jsonbody
from .estimate import estimate_tokens

_HELD_RETRY_SECONDS = 1  # a quota held by requests in flight frees up as soon as they finish
# Bodies parsed for their output cap; a larger one (inline media) is not parsed twice, and holds the default.
_PARSED_MAX_BYTES = 256 * 1024
# Read-only answers about the caller's own usage: never refused for a spent quota or budget.
UNMETERED_PATHS = ("/gemini/usage",)


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


def is_generation(state):
    """Whether this request can spend output tokens: the /gemini APIs' POSTs, and the native generation
    calls (an interaction's too)."""
    if current_request().method != "POST":
        return False
    if state.area == API:
        return True
    route = state.native.route  # parsed by the access check, which refuses a path that does not parse
    # An interaction generates as generateContent does: holding nothing, any number would run at once.
    return not route.prefix and (route.generation or route.segments == ("interactions",) or (
        route.openai and route.segments[1:] == ("chat", "completions")))


def _estimate():
    body = current_request().get_data(cache=True)  # cached: the resource and the pass-through read the same bytes
    try:
        payload = jsonbody.loads(body) if body and len(body) <= _PARSED_MAX_BYTES else None
    except jsonbody.BadJson:
        payload = None  # refused as a 400 further on, which settles at 0
    return estimate_tokens(body, payload, current_application().config["MAX_OUTPUT_TOKENS_LIMIT"])


def check_token_quota():
    """before_request: hold this request's estimated tokens against its client's daily quota, or refuse
    it when nothing is left; count_usage settles the hold once the request is recorded."""
    state = current_state()
    client = state.client
    incoming = current_request()
    if client is None or not state.recorded_area or incoming.method == "OPTIONS" or incoming.path in UNMETERED_PATHS:
        return
    quota = client.daily_token_quota if client.daily_token_quota is not None else \
        current_application().config["DAILY_TOKEN_QUOTA"]
    if not quota:
        return
    quotas = current_application().extensions["quotas"]
    day_start = state.started_at.replace(hour=0, minute=0, second=0, microsecond=0)
    day = day_start.date().isoformat()
    try:
        if quotas.due_for_floor(client.id, day):
            try:
                quotas.floor(client.id, day, recorded_today(client.id, day_start))
            except SQLAlchemyError:  # the ledger holds the quota meanwhile
                db.session.rollback()
                quotas.warn("recorded usage unread (the database did not answer): the quota ledger holds it")
        reservation = quotas.reserve(client.id, day, state.request_id, _estimate() if is_generation(state) else 0,
                                     quota)
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
    """An observer of each finished request's record (registered in the app factory): its real tokens
    settle the hold it made."""
    quotas = app.extensions.get("quotas")
    if quotas is None or record.client_id is None:
        return
    tokens = 0 if record.cache_status == "HIT" else (record.total_tokens or 0)
    try:
        quotas.settle(record.client_id, record.request_id, tokens)
    except sqlite3.Error:  # the hold expires by itself; never fail the record over it
        quotas.warn("token usage not settled: the quota ledger did not answer")
