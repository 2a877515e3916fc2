"""Paths matched as sent: a path with an empty segment (`//`) is a JSON 404 on every route, never a redirect."""
from werkzeug.routing import Map

from .errors import NotFound
from .requestctx import current_request


class ExactPathMap(Map):
    """Werkzeug's default answers `//` inside a path with a redirect to the merged path, which Flask-RESTX's
    error handler raises again (an HTML 500 for a POST) and which would copy the query, keys and all,
    into a Location header."""

    def __init__(self, *args, **kwargs):
        kwargs["merge_slashes"] = False
        super().__init__(*args, **kwargs)


def refuse_empty_segments():
    """A before_request hook. Werkzeug strips leading slashes (from request.path too) before matching, and
    the pass-through's <path:...> takes `//` in its stride: no API has an empty segment, so refuse it
    here, on the path as sent, once for all."""
    if "//" in current_request().environ.get("PATH_INFO", ""):
        raise NotFound("No route has an empty segment (//) in its path.")
