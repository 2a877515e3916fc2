"""CORS for browser clients, and the security headers every answer carries."""
from flask import request
from flask_cors import CORS

_EXPOSED = ["X-Request-ID", "X-Gemini-Model", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
            "X-RateLimit-Reset"]
_ALLOWED = ["Content-Type", "Authorization", "X-API-KEY", "x-goog-api-key", "x-goog-api-client", "X-Request-ID",
            "Cache-Control"]


def _security_headers(response):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith(("/docs", "/swaggerui")):
        # API answers are per-caller and may carry generated text: no shared caches.
        headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    return response


def init_security(app):
    origins = app.config["CORS_ORIGINS"]
    if origins:
        CORS(app, origins=origins, allow_headers=_ALLOWED, expose_headers=_EXPOSED, max_age=600)
    app.after_request(_security_headers)
