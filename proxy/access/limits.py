"""Per-client request rate limits (Flask-Limiter); daily token quotas live in quotas.py."""
from flask import current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Storage imports count_usage (and may import check_token_quota) from here, where they used to live.
from .quotas import check_token_quota, count_usage  # noqa: F401


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
