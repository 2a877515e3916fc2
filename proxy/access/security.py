"""CORS for browser clients, and the headers every answer carries: security's, and the request's id."""
from flask_cors import CORS

from ..requestctx import answer_headers

_EXPOSED = ["X-Request-ID", "X-Gemini-Model", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
            "X-RateLimit-Reset"]
_ALLOWED = ["Content-Type", "Authorization", "X-API-KEY", "x-goog-api-key", "x-goog-api-client", "X-Request-ID",
            "Cache-Control"]


_EVERY_ANSWER = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                 ("X-Frame-Options", "DENY"))
# API answers are per-caller and may carry generated text: no shared caches. The Swagger UI needs its scripts.
_API_ANSWER = _EVERY_ANSWER + (("Cache-Control", "no-store"),
                               ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
_DOCS = ("/docs", "/swaggerui")
# Each pair with its name in lower case, worked out once.
_EVERY_ANSWER_NAMED = [(pair, pair[0].lower()) for pair in _EVERY_ANSWER]
_API_ANSWER_NAMED = [(pair, pair[0].lower()) for pair in _API_ANSWER]
_KNOWN_MAX = 4096  # header names remembered in lower case; upstream's may be any
_lower = {}


class SecurityHeaders:
    """WSGI middleware: adds the request's id (requestctx.answer_headers) and each security header the app
    did not set itself. It works on the plain list of pairs the app hands start_response, a tenth of the
    cost of Werkzeug's header methods on every answer."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        defaults = _EVERY_ANSWER_NAMED if environ.get("PATH_INFO", "").startswith(_DOCS) else _API_ANSWER_NAMED

        def start(status, headers, exc_info=None):
            lower = _lower
            present = {lower[name] if name in lower else _lowered(name) for name, _ in headers}
            replaced, own = answer_headers(environ)
            if replaced & present:  # the request's own id (and cache status) replace any other
                headers[:] = [(name, value) for name, value in headers if name.lower() not in replaced]
            headers += own
            headers += [pair for pair, name in defaults if name not in present]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _lowered(name):
    lowered = name.lower()
    if len(_lower) < _KNOWN_MAX:
        _lower[name] = lowered
    return lowered


def init_security(app):
    origins = app.config["CORS_ORIGINS"]
    if origins:
        CORS(app, origins=origins, allow_headers=_ALLOWED, expose_headers=_EXPOSED, max_age=600)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)
