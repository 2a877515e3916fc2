"""Per-request context: the request id, the start time, and the headers every answer carries."""
import re
import time
import uuid
from datetime import datetime, timezone

from flask import g, request

# A client-supplied id is kept only if it is short and plain, so it is safe in logs and headers.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def begin():
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
    g.started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    started = time.perf_counter()
    g.elapsed_ms = lambda: round((time.perf_counter() - started) * 1000, 3)


def finish(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    if g.get("cache_status"):
        response.headers["X-Cache"] = g.cache_status
    return response
