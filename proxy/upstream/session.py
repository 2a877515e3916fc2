"""The HTTP calls under the SDK's REST transport: requests' interface, without requests' cost.

The SDK's transport asks its session for one thing, post(url, timeout, headers, params, data), and reads
a requests.Response back. requests spends about 0.2 ms of CPU a call preparing what the pool then sends;
UpstreamHttp.request takes the place of the session's own request method (the transport keys its
methods by the session object, so the object itself stays), sends the call straight, applies the key
the way the SDK's credentials do, and answers with a requests.Response and requests' exceptions, so the
SDK and GeminiSdk see no difference."""
import datetime
from collections import OrderedDict
from functools import lru_cache
from urllib.parse import urlencode

import requests
import urllib3
from requests.cookies import cookiejar_from_dict
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

from . import fast_headers, url_memo
from .failures import untrusted_certificate
from .h2pool import H2Pool
from .http1pool import Http1Pool

_NO_TIME = datetime.timedelta(0)  # requests.Response's elapsed when nothing timed it


class UntrustedCertificate(requests.exceptions.SSLError):
    """Gemini's TLS certificate failed verification; the message says why."""


@lru_cache(maxsize=64)
def _encoded(items):
    return urlencode(items, doseq=True)


def _query(params):
    """The query string, as requests would encode it; the SDK sends the same few parameters every call."""
    try:
        return _encoded(tuple(params.items() if isinstance(params, dict) else params))
    except TypeError:  # a list among the values: not hashable, encoded each time
        return urlencode(params, doseq=True)


@lru_cache(maxsize=64)
def _timeout(connect, read):
    """One attempt's timeouts, as the pools take them (immutable once made: every pool reads or clones it)."""
    return urllib3.Timeout(connect=connect, read=read)


def upstream_pool(base_url, pool_size, http2=False):
    """Connections to Gemini for either API: through the operator's HTTPS_PROXY (or HTTP_PROXY, ALL_PROXY)
    unless NO_PROXY exempts the host; the pool's own retries off, the callers retry. HTTP/2 over TLS when
    `http2` (many requests to a connection), else HTTP/1.1 (a connection per request in flight): over
    http1pool's standard-library connections, or urllib3's ProxyManager through an egress proxy."""
    fast_headers.install()
    url_memo.install()
    proxies = get_environ_proxies(base_url)
    proxy = proxies.get(base_url.split(":", 1)[0]) or proxies.get("all")
    if http2 and base_url.startswith("https:"):  # h2 without TLS (h2c) is not what Google serves
        return H2Pool(proxy, pool_size)
    if proxy:
        return urllib3.ProxyManager(proxy, num_pools=4, maxsize=pool_size, block=False, retries=False)
    return Http1Pool(pool_size)


class _Answer(requests.Response):
    """requests.Response as requests' adapter leaves it, built without its constructor: the cookie jar,
    which nothing here fills and the SDK never reads, is made only if someone asks for it."""

    def __init__(self, status, content, headers, url, request):  # requests' own __init__ is what it saves
        self.__dict__.update(_content=content, _content_consumed=False, _next=None, status_code=status,
                             headers=headers, raw=None, url=url, encoding="utf-8", history=[], reason=None,
                             elapsed=_NO_TIME, request=request)

    @property
    def cookies(self):
        jar = self.__dict__.get("_cookies")
        if jar is None:
            jar = self.__dict__["_cookies"] = cookiejar_from_dict({})
        return jar

    @cookies.setter
    def cookies(self, jar):
        self.__dict__["_cookies"] = jar


def _case_insensitive(headers):
    """requests' CaseInsensitiveDict of a plain dict, filled in one step instead of a call per header."""
    folded = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
    folded._store = OrderedDict(zip(map(str.lower, headers), headers.items()))
    return folded


class UpstreamHttp:
    """The SDK session's request method, over a pool shared by every key's client (and the pass-through)."""

    def __init__(self, credentials, http):
        self.credentials = credentials
        self.http = http
        # urllib3's request() only turns the headers into an HTTPHeaderDict (which its pool then copies
        # field by field) before calling urlopen, which reads the answer whole as request() would: a plain
        # dict goes straight to urlopen (Http1Pool's reads it whole too). H2Pool's urlopen leaves the answer
        # to read: its request reads it.
        self._send = http.request if isinstance(http, H2Pool) else http.urlopen

    def request(self, method, url, timeout=None, headers=None, params=None, data=None, **unused):
        headers = dict(headers or {})
        self.credentials.before_request(None, method, url, headers)
        if params:
            url += ("&" if "?" in url else "?") + _query(params)
        body = data.encode("utf-8") if isinstance(data, str) else data
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        try:
            reply = self._send(method, url, body=body, headers=headers, redirect=False, timeout=_timeout(connect, read))
        except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError, yet no timeout
            raise requests.exceptions.ConnectionError(str(exc)) from None
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise requests.exceptions.ConnectTimeout(str(exc)) from None
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except urllib3.exceptions.LocationParseError as exc:
            raise requests.exceptions.InvalidURL(str(exc)) from None
        except urllib3.exceptions.HTTPError as exc:
            reason = untrusted_certificate(exc)
            if reason is not None:
                raise UntrustedCertificate(reason) from None
            raise requests.exceptions.ConnectionError(str(exc)) from None
        plain = getattr(reply, "plain_headers", None)  # http1pool's, else what dict() makes of urllib3's
        headers = _case_insensitive(plain if plain is not None else dict(reply.headers))
        request = requests.PreparedRequest()  # the SDK's error messages name its method and URL
        request.method, request.url = method, url
        return _Answer(reply.status, reply.data, headers, url, request)
