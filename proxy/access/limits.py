"""Per-client request rate limits (Flask-Limiter); daily token quotas live in quotas.py."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from ..requestctx import current as current_state, current_application, current_request, current_request_context
from ..storage.database import local_path
from . import limit_store  # registers the sqlite:// scheme with `limits`


def _rate_key():
    client = current_state().client
    return f"client:{client.id}" if client is not None else f"addr:{get_remote_address()}"


def _limit_of(client):
    return (client.rate_limit if client is not None and client.rate_limit else None) or \
        current_application().config["RATE_LIMIT"]


def _limit_for_caller():
    return _limit_of(current_state().client)


def _exempt():
    # Only the generation APIs are limited; health, docs and operator endpoints are not.
    state = current_state()  # once: every request asks
    return not state.recorded_area or current_request().method == "OPTIONS" or not _limit_of(state.client)


def storage_url(app):
    """RATE_LIMIT_STORAGE_URL, or by default a SQLite file beside the database: every worker of the
    host counts in it, so a limit holds for the host without Redis."""
    return app.config["RATE_LIMIT_STORAGE_URL"] or f"{limit_store.SCHEME}:///{local_path(app, 'rate-limits')}"


def sharing(app):
    """Who shares this worker's rate-limit counts: "host" (the file beside the database), "instances"
    (Redis), or "worker" (memory://, or the storage is unreachable and this worker counts alone)."""
    url = app.config["RATELIMIT_STORAGE_URI"]
    if url.startswith("memory://") or storage_unreachable(app):
        return "worker"
    return "host" if url.startswith(f"{limit_store.SCHEME}://") else "instances"


def storage_unreachable(app):
    """Whether this worker counts in memory because its storage failed. Flask-Limiter marks the storage
    dead (a private flag, its only sign) when a call to it fails, logs a warning, counts in memory
    meanwhile, and tries the storage again, less and less often, on the requests that follow."""
    return getattr(app.extensions["rate_limiter"], "_storage_dead", False)


def init_limits(app):
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_url(app))
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
    _skip_when_exempt(app, limiter)
    app.extensions["rate_limiter"] = limiter
    return limiter


def _skip_when_exempt(app, limiter):
    """Flask-Limiter's three hooks, run only for a request a limit applies to. For the others (most: no
    RATE_LIMIT, or not a generation API) its before hook finds no limit after building its request context,
    evaluating the (absent) meta limits and asking its exemption scopes, and its after and teardown hooks
    then find that context empty: about 190 calls a request that change nothing. The before hook asks
    `_exempt` first, as the request filter would; the others run when the before hook made a context."""
    before, after, teardown = (hooks[None][-1] for hooks in (app.before_request_funcs, app.after_request_funcs,
                                                             app.teardown_request_funcs))
    # Its hooks as Flask-Limiter 4.1 registers them: another version must be looked at again, not guessed at.
    if before != limiter._check_request_limit or getattr(after, "args", None) != (limiter,) \
            or teardown != getattr(limiter, "_Limiter__release_context", None):
        raise RuntimeError("Flask-Limiter's request hooks are not where limits.py expects them")

    def check_request_limit():
        if not _exempt():
            return before()

    def inject_headers(response):
        if getattr(current_request_context(), "_limiter_request_context", None) is None:
            return response
        return after(response)

    def release_context(exc=None):
        if getattr(current_request_context(), "_limiter_request_context", None) is not None:
            teardown(exc)

    app.before_request_funcs[None][-1] = check_request_limit
    app.after_request_funcs[None][-1] = inject_headers
    app.teardown_request_funcs[None][-1] = release_context
