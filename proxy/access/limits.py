"""Per-client request rate limits (Flask-Limiter) and daily token quotas (from recorded usage)."""
from datetime import datetime, timedelta, timezone

from flask import current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from models import RequestLog, db

from ..errors import TokenQuotaExceeded


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
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter
    return limiter


def seconds_until_utc_midnight(now=None):
    now = now or datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def tokens_used_today(client_id):
    start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    query = select(func.coalesce(func.sum(RequestLog.total_tokens), 0)).where(
        RequestLog.client_id == client_id, RequestLog.created_at >= start,
        # Answers from the cache cost Gemini nothing, so they spend no quota.
        (RequestLog.cache_status.is_(None)) | (RequestLog.cache_status != "HIT"))
    return db.session.execute(query).scalar_one()


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
