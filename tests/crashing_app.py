"""A WSGI app for tests whose every request but /health raises, naming its URI, as a buggy view might."""
import logging

log = logging.getLogger("crashing_app")


def app(environ, start_response):
    uri = environ["RAW_URI"]
    if environ["PATH_INFO"] == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    raise RuntimeError(f"could not serve {uri} (headers {[(k, v) for k, v in environ.items() if k.startswith('HTTP_')]})")
