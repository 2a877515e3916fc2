"""Header hygiene: hop-by-hop headers dropped, secrets never forwarded twice (wire.headers redacts stored ones)."""
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
# Set by the proxy itself, or meaningless beyond it.
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "x-goog-api-key", "authorization",
                              "cookie", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                              "x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "forwarded",
                              "x-api-key", "x-request-id"}
# Google's alt-svc advertises its own HTTP/3 endpoint, which is not where the client is talking.
NOT_RETURNED = HOP_BY_HOP | {"alt-svc", "content-length", "server", "date"}


def upstream_headers(incoming):
    headers = {name: value for name, value in incoming.items() if name.lower() not in NOT_FORWARDED}
    # Uncompressed from upstream: the proxy reads usage from the bytes it forwards.
    headers["Accept-Encoding"] = "identity"
    return headers


def client_headers(upstream):
    return [(name, value) for name, value in upstream.items() if name.lower() not in NOT_RETURNED]

