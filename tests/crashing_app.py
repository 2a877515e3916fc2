"""A WSGI app for tests whose every request but /health raises, naming its URI, as a buggy view might."""


def app(environ, start_response):
    uri = environ["RAW_URI"]
    if environ["PATH_INFO"] == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    headers = [(name, value) for name, value in environ.items() if name.startswith("HTTP_")]
    raise RuntimeError(f"could not serve {uri} (headers {headers})")
