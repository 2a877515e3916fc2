"""What the emulator's stateful resources share: the caller's key checked as Google checks it, new ids,
RFC 3339 stamps, and Google's pageSize/pageToken paging over one key's own resources."""
import secrets
from datetime import datetime, timezone

from flask import request

from . import replies


def request_key():
    """The caller's API key, read as Google reads it (header, ?key=, or a bearer token)."""
    bearer = request.headers.get("Authorization", "")
    return (request.headers.get("x-goog-api-key") or request.args.get("key")
            or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""))


def json_object():
    """The request's JSON body if it is an object, else {} (each field is then checked as missing)."""
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


def new_id():
    return secrets.token_hex(6)


def now():
    return datetime.now(timezone.utc)


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text):
    """An RFC 3339 time as Google takes it (Z or an offset, with or without fractions)."""
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def parse_duration(text):
    """A protobuf Duration ("300s", "1.5s") in seconds."""
    text = str(text).strip()
    seconds = float(text[:-1]) if text.endswith("s") else float("nan")
    if not 0 <= seconds <= 10 ** 9:  # NaN fails too
        raise ValueError(text)
    return seconds


class Caller:
    """Checks a call's version and key once, for every resource route: `refusal` is the error to answer
    with (Google's 404 for an unknown version, 403/400 for a missing or unknown key), else None."""

    def __init__(self, state, versions, google_error):
        self.state, self.versions, self.google_error = state, versions, google_error

    def error(self, status, message):
        return self.google_error(status, replies.error_body(status, message))

    def check(self, version):
        key = request_key()
        if version not in self.versions:
            return key, self.error(404, f"Unknown API version {version}.")
        refusal = replies.key_refusal(key, self.state.valid_keys)
        return key, (None if refusal is None else self.google_error(*refusal))


def page(items, field, default_size=50, max_size=1000):
    """The body of a list call: one page of `items` under `field`, and nextPageToken while more remain.
    The token is an offset into the key's own list; a token that is not one is Google's 400."""
    try:
        size = int(request.args.get("pageSize") or default_size)
        start = int(request.args.get("pageToken") or 0)
    except ValueError:
        return None
    if size <= 0:
        size = default_size
    size = min(size, max_size)
    if start < 0:
        return None
    body = {field: items[start:start + size]} if items[start:start + size] else {}
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body
