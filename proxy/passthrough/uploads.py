"""The Files API's resumable uploads through the proxy.

Gemini answers the start of an upload with the URL its chunks go to, and that URL is their credential:
the SDKs send the chunks without a key. The proxy points the URL at itself, so the chunks come through it
too (and a client never learns a way around the gateway), and adds which key the upload began with,
since the upload belongs to that key's project: a server key by its fingerprint, signed with the key
itself so that no one can make such a URL who was not given one (it lets a chunk past client-key
checks, as Gemini lets it past its own), or the client's own key, which the proxy does not hold."""
import hashlib
import hmac
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import current_app

PREFIX = "upload/"
PINNED = "gemini_proxy_key"  # the query parameter the proxy adds to the upload URL it gives out
OWN = "own"  # begun with the client's own Gemini key: the chunks carry it, or none
_URL_HEADERS = {"x-goog-upload-url", "x-goog-upload-control-url"}


def carries_file(incoming):
    """An upload's chunk of a file (not the JSON that begins it): kept out of the stored bodies."""
    return "upload" in incoming.headers.get("X-Goog-Upload-Command", "")


def _signature(key, upload_id):
    return hmac.new(key.encode(), upload_id.encode(), hashlib.sha256).hexdigest()[:32]


def signed_chunk(incoming):
    """A chunk sent to an upload URL the proxy gave out for one of its server keys."""
    if not incoming.path.startswith("/" + PREFIX):
        return False
    key_id, _, signature = incoming.args.get(PINNED, "").partition(".")
    upload_id = incoming.args.get("upload_id", "")
    pool = current_app.extensions["forwarder"].pool
    key = pool.key_with_id(key_id) if key_id and signature and upload_id else None
    return key is not None and hmac.compare_digest(signature, _signature(key, upload_id))


def pinned_key(query):
    """(the query without the proxy's parameter, the key it names: a server key's fingerprint, OWN, or
    None when it names none)."""
    if PINNED not in query:
        return query, None
    kept, pinned = [], None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == PINNED:
            pinned = value.partition(".")[0]
        else:
            kept.append((name, value))
    return urlencode(kept), pinned


def pointed_here(headers, url_root, server_key, key_id):
    """`headers` (name, value pairs) with Gemini's upload URLs moved onto the proxy at `url_root`, naming
    the server key (`server_key`, fingerprint `key_id`) the upload began with, or OWN when it was none."""
    return [(name, _here(value, url_root, server_key, key_id) if name.lower() in _URL_HEADERS else value)
            for name, value in headers]


def _here(url, url_root, server_key, key_id):
    parts = urlsplit(url)
    if not parts.path.startswith("/" + PREFIX):
        return url
    upload_id = dict(parse_qsl(parts.query)).get("upload_id", "")
    pin = f"{key_id}.{_signature(server_key, upload_id)}" if server_key else OWN
    query = "&".join(part for part in (parts.query, urlencode({PINNED: pin})) if part)
    return f"{url_root.rstrip('/')}{parts.path}?{query}"
