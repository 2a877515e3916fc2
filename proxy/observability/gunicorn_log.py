"""Gunicorn's logger with every credential masked: its error log, its tracebacks and its access log.

Gunicorn writes request lines and URIs itself ("Error handling request GET /v1beta/...?key=...",
"Invalid request from ip=...: Invalid HTTP request line: '...'"), before or after the app runs, so the
app's own log filter never sees them. gunicorn.conf.py names this class as its logger_class.
"""
from gunicorn.glogging import Logger

from .redact import MASK, RedactFilter, is_secret_header, redact

_FILTER = RedactFilter()


def _atom(name, value):
    # {x-goog-api-key}i, {authorization}i, {http_x_api_key}e: a credential by its name, whatever it holds.
    if name.startswith("{") and is_secret_header(name[1:name.rfind("}")]):
        return MASK
    if name == "q" and isinstance(value, str):
        return redact("?" + value)[1:]  # the bare query string: give it the start a query has
    return redact(value) if isinstance(value, str) else value


class RedactingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        # On every handler Gunicorn (or a logconfig_dict) set up, so a record is masked before any of them
        # formats it: message, arguments and traceback alike. A reload runs setup again: add once.
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if _FILTER not in handler.filters:
                    handler.addFilter(_FILTER)

    def atoms(self, resp, req, environ, request_time):
        return {name: _atom(name, value) for name, value in super().atoms(resp, req, environ, request_time).items()}
