"""Gunicorn's gevent worker with its own refusals in JSON: a request it cannot parse gets Google's error shape.

Gunicorn answers what it refuses before the app runs (a request line over limit_request_line, a header
it cannot parse, a transfer coding it does not take) with an HTML page that echoes the client's bytes.
Every other answer of the proxy is JSON with a stable status, so these are too, and they echo nothing."""
import json

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from .. import shutdown

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 414: "INVALID_ARGUMENT", 417: "FAILED_PRECONDITION",
           431: "INVALID_ARGUMENT", 500: "INTERNAL", 501: "UNIMPLEMENTED"}
_MESSAGES = {
    400: "The request is not valid HTTP/1.1: its request line, a header or its chunked framing is malformed.",
    403: "The request is refused.",
    414: "The request line is longer than this server accepts.",
    417: "The request's Expect header cannot be met.",
    431: "The request's headers are larger than this server accepts.",
    500: "The server could not read the request.",
    501: "The request's Transfer-Encoding is not one this server takes.",
}


def json_error(status, reason):
    """The bytes of a closing HTTP response in Google's error shape for one of Gunicorn's own refusals."""
    body = json.dumps({"error": {"code": status, "message": _MESSAGES.get(status, reason),
                                 "status": _STATUS.get(status, "UNKNOWN")}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    return head + body


def _write_json_error(sock, status_int, reason, _mesg):
    util.write_nonblock(sock, json_error(status_int, reason))


class JsonErrorGeventWorker(GeventWorker):
    def init_process(self):
        # Gunicorn's base worker calls util.write_error for every refusal; this process answers in JSON.
        util.write_error = _write_json_error
        super().init_process()

    def handle_exit(self, sig, frame):
        # SIGTERM: what is held open (Live sessions) hears of it now, and has the graceful timeout to end.
        super().handle_exit(sig, frame)
        gevent.spawn(shutdown.announce)
