"""Logging: one line per event with the request id; credentials masked, known secrets shown as fingerprints."""
import logging
import sys

from .observability.redact import RedactFilter
from .requestctx import current_request_id
from .upstream.keypool import fingerprint

_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = current_request_id("-")
        return True


def configure_logging(level, secrets):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RequestIdFilter())
    # Belt and braces: a message that quotes a key the server holds carries only its fingerprint, and
    # any credential in a URL, a header or a traceback (whoever logs it) is masked.
    handler.addFilter(RedactFilter({secret: fingerprint(secret) for secret in secrets if secret}))
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "_gemini_proxy", False)]:
        root.removeHandler(existing)
    handler._gemini_proxy = True
    root.addHandler(handler)
    root.setLevel(level)
