"""Logging: one line per event with the request id; secrets replaced by their fingerprints."""
import logging
import re
import sys

from flask import g, has_request_context

from .upstream.keypool import fingerprint

_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
# Keys a client passes in a URL (?key=...), whoever logs that URL.
_QUERY_KEY = re.compile(r"([?&]key=)[^&\s\"']+")


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class SecretRedactor(logging.Filter):
    """Belt and braces: even a message that quotes a key carries only its fingerprint."""

    def __init__(self, secrets):
        super().__init__()
        self.secrets = {s: fingerprint(s) for s in secrets if s and len(s) >= 6}

    def filter(self, record):
        message = record.getMessage()
        redacted = _QUERY_KEY.sub(r"\1[redacted]", message)
        for secret, name in self.secrets.items():
            redacted = redacted.replace(secret, name)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def configure_logging(level, secrets):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretRedactor(secrets))
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "_gemini_proxy", False)]:
        root.removeHandler(existing)
    handler._gemini_proxy = True
    root.addHandler(handler)
    root.setLevel(level)
