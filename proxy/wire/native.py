"""A native request read once: its route, its query and the credentials it presents."""
from dataclasses import dataclass
from urllib.parse import quote

from . import credentials, query as queries, routes


@dataclass(frozen=True)
class NativeRequest:
    route: routes.Route
    query: queries.Query
    presented: credentials.Presented


def target_path(environ):
    """The path as the client sent it; rebuilt from the decoded one where the server keeps no raw copy."""
    raw = routes.raw_path(environ)
    if raw is None:
        raw = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/:")
    return raw


def read(environ, headers):
    """The NativeRequest, or BadRoute, BadQuery or BadCredentials saying what is wrong."""
    route = routes.parse(target_path(environ))
    query = queries.parse(environ.get("QUERY_STRING", ""))
    return NativeRequest(route, query, credentials.presented(headers, query.key, native=True))
