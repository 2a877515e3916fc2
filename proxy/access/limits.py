"""Per-client request rate limits (Flask-Limiter) and daily token quotas (from recorded usage)."""
import time
from datetime import datetime, timedelta, timezone

from flask import current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from models import RequestLog, db

from ..errors import TokenQuotaExceeded

# How often a worker re-reads a client's recorded usage; other workers' answers count within this.
_USAGE_REFRESH_SECONDS = 1.0


def _rate_key():
    client = g.get("client")
    return f"client:{client.id}" if client is not None else f"addr:{get_remote_address()}"


def _limit_for_caller():
    client = g.get("client")
    return (client.rate_limit if client is not None and client.rate_limit else None) or \
        current_app.config["RATE_LIMIT"]


def _exempt():
    # Only the generation APIs are limited; health, docs and operator endpoints are not.
    return g.get("area") not in ("api", "native") or request.method == "OPTIONS" or not _limit_for_caller()


def init_limits(app):
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["RATE_LIMIT_STORAGE_URL"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter = Limiter(
        key_func=_rate_key,
        application_limits=[_limit_for_caller],
        application_limits_exempt_when=_exempt,
        strategy="moving-window",
        # Storage trouble (Redis down) must not take generation down: count in memory meanwhile.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="gemini-proxy",
    )
    # Checked before Flask-Limiter resolves any limit: most requests have none, and resolving costs.
    limiter.request_filter(_exempt)
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter
    return limiter


def seconds_until_utc_midnight(now=None):
    now = now or datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def _utc_day_start():
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def tokens_used_today(client_id):
    """The client's recorded tokens since UTC midnight: read from the database at most once every
    _USAGE_REFRESH_SECONDS per worker, plus what this worker answered since (count_usage)."""
    usage = current_app.extensions.setdefault("token_usage", {})
    day, now = _utc_day_start(), time.monotonic()
    known = usage.get(client_id)
    if known is not None and known["day"] == day and now - known["read_at"] < _USAGE_REFRESH_SECONDS:
        return known["tokens"]
    query = select(func.coalesce(func.sum(RequestLog.total_tokens), 0)).where(
        RequestLog.client_id == client_id, RequestLog.created_at >= day,
        # Answers from the cache cost Gemini nothing, so they spend no quota.
        (RequestLog.cache_status.is_(None)) | (RequestLog.cache_status != "HIT"))
    tokens = db.session.execute(query).scalar_one()
    usage[client_id] = {"day": day, "read_at": now, "tokens": tokens}
    return tokens


def count_usage(app, record):
    """Add a finished request's tokens to its client's usage as this worker knows it: its record reaches
    the database moments later, and the next request must not wait for that to be refused."""
    known = app.extensions.get("token_usage", {}).get(record["client_id"])
    if known is not None and record.get("cache_status") != "HIT" and record.get("total_tokens"):
        known["tokens"] += record["total_tokens"]


def check_token_quota():
    """before_request: refuse a client whose recorded tokens today reached its quota."""
    client = g.get("client")
    if client is None or g.get("area") not in ("api", "native"):
        return
    quota = client.daily_token_quota if client.daily_token_quota is not None else \
        current_app.config["DAILY_TOKEN_QUOTA"]
    if not quota:
        return
    try:
        used = tokens_used_today(client.id)
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.warning("token quota unchecked: the database did not answer", exc_info=True)
        return
    if used >= quota:
        raise TokenQuotaExceeded(f"The daily token quota of {quota} is used up ({used} tokens today, UTC).",
                                 retry_after=seconds_until_utc_midnight())
