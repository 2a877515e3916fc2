"""The client's address and scheme from X-Forwarded-*, believed only when nginx (a trusted peer) sent them."""
import ipaddress
from functools import lru_cache


class TrustedForwarded:
    """WSGI middleware. nginx appends the address it saw to X-Forwarded-For, so the last entry is the
    one a trusted peer vouches for; everything before it came from the client and is not believed."""

    def __init__(self, app, trusted):
        self.app = app
        self.networks = [ipaddress.ip_network(entry.strip(), strict=False) for entry in trusted if entry.strip()]
        # A worker sees few peers (nginx, mostly): parse each address once, not on every request.
        self.trusted = lru_cache(maxsize=4096)(self._trusted)

    def _trusted(self, address):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusted(environ.get("REMOTE_ADDR", "")):
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
            if forwarded:
                try:
                    environ["REMOTE_ADDR"] = str(ipaddress.ip_address(forwarded))
                except ValueError:
                    pass  # not an address: keep the peer's
            scheme = environ.get("HTTP_X_FORWARDED_PROTO", "").strip().lower()
            if scheme in ("http", "https"):
                environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)
