"""The Files API's resumable uploads through the proxy: the upload URL Gemini hands out, pointed here.

Gemini answers the start of an upload with the URL its chunks go to. The proxy points that URL at
itself, so the chunks come through it too (and a client never learns a way around the gateway), with
a grant (wire.upload_urls) naming the key the upload began with, since the upload belongs to that
key's project, and the client who began it. A server key's grant is signed with that key; an own
key's with the client's key hash, which only the proxy holds; a grant with neither is unsigned and
lets nothing past a closed proxy's key check (access.upload_grants)."""
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..wire import routes, upload_urls

_URL_HEADERS = {"x-goog-upload-url", "x-goog-upload-control-url"}


def carries_file(incoming):
    """An upload's chunk of a file (not the JSON that begins it): kept out of the stored bodies."""
    return "upload" in incoming.headers.get("X-Goog-Upload-Command", "")


def finished(headers):
    """Whether an answer to a chunk says the upload is complete."""
    return any(name.lower() == "x-goog-upload-status" and value.strip().lower() == "final"
               for name, value in headers)


def pointed_here(headers, url_root, *, server_key, key_id, client_id, client_secret, seconds, now=None):
    """`headers` (name, value pairs) with Gemini's upload URLs moved onto the proxy at `url_root`, with a
    grant for the server key (`server_key`, fingerprint `key_id`) the upload began with, or OWN, and
    the client that began it (`client_id`, whose key hash is `client_secret`), valid for `seconds`."""
    expires = int((time.time() if now is None else now) + seconds)
    client = (client_id, client_secret)
    return [(name, _here(value, url_root, server_key, key_id, client, expires)
             if name.lower() in _URL_HEADERS else value) for name, value in headers]


def _here(url, url_root, server_key, key_id, client, expires):
    parts = urlsplit(url)
    try:
        route = routes.parse(parts.path)
    except routes.BadRoute:
        return url  # not an upload URL of Gemini's: passed on as Gemini gave it
    if not route.upload:
        return url
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
             if name != upload_urls.PARAMETER]
    upload_id = dict(query).get("upload_id", "")
    client_id, client_secret = client
    pin, secret = (key_id, server_key) if server_key else (upload_urls.OWN, client_secret)
    grant = upload_urls.issue(secret, route.upstream(), upload_id, pin, client_id, expires)
    query.append((upload_urls.PARAMETER, grant.text()))
    return f"{url_root.rstrip('/')}{route.upstream()}?{urlencode(query)}"
