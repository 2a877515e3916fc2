"""urllib3's URL parsing remembered for the few URLs a worker calls again and again.

urllib3 parses every call's URL twice (the pool manager to pick a pool, the pool to check its target),
percent-encoding path and query a character at a time when either holds a `%`, as the SDK's query
(`%24alt=json%3Benum-encoding%3Dint`) always does: about 190 Python calls of a /gemini/generate request.
Both are pure functions of one string, answering an immutable Url or a string, so the same answers are
remembered for the last URLs seen; a URL that fails to parse raises each time, as before. Installed once
per process by session.upstream_pool: urllib3's modules look the functions up by name on every call."""
from functools import lru_cache

import urllib3.connectionpool
import urllib3.poolmanager
from urllib3.util import url as _url

_REMEMBERED = 256  # URLs: every model x action the SDK calls, and the pass-through's most frequent paths


def install():
    if urllib3.poolmanager.parse_url is _url.parse_url:
        remembered = lru_cache(maxsize=_REMEMBERED)(_url.parse_url)
        urllib3.poolmanager.parse_url = urllib3.connectionpool.parse_url = remembered
    if urllib3.connectionpool._encode_target is _url._encode_target:
        urllib3.connectionpool._encode_target = lru_cache(maxsize=_REMEMBERED)(_url._encode_target)
