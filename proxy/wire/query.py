"""A native request's query string parsed once: its parameters decoded, its credentials set apart.

Google decodes parameter names before it reads them, so `?k%65y=` is `key` there; deciding what is a
credential on the raw bytes would forward and store a key spelled with escapes. What goes upstream is
rebuilt from the decoded pairs, and what is stored has every credential and upload token blanked."""
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

KEY = "key"
# OAuth tokens in the query; the proxy takes OAuth only as Authorization: Bearer.
TOKENS = frozenset({"access_token", "oauth_token"})
# Not credentials of Gemini's, but bearer tokens of one upload each (Gemini's, and the proxy's own).
UPLOAD_TOKENS = frozenset({"upload_id", "gemini_proxy_key"})
MAX_PARAMETERS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REDACTED = "[redacted]"


class BadQuery(ValueError):
    """The query cannot be one a Gemini client sends; always a 400."""


@dataclass(frozen=True)
class Query:
    pairs: tuple  # (name, value), decoded, credentials removed
    key: str = ""  # the one `key` parameter, if any

    # Most requests have no query at all: each method answers such a one without building anything.
    def get(self, name, default=""):
        if not self.pairs:
            return default
        return next((value for known, value in self.pairs if known == name), default)

    def without(self, name):
        if not self.pairs:
            return self  # immutable: nothing to take away
        return Query(tuple(pair for pair in self.pairs if pair[0] != name), self.key)

    def with_pair(self, name, value):
        return Query(self.pairs + ((name, value),), self.key)

    def encoded(self, key=None):
        """The query to send upstream, with `key` as its key parameter where given."""
        if not self.pairs and not key:
            return ""
        pairs = list(self.pairs) + ([(KEY, key)] if key else [])
        return urlencode(pairs, quote_via=quote, safe="$;,:")

    def stored(self):
        """The query as the database keeps it: no credential, no upload token."""
        if not self.pairs:
            return None
        pairs = [(name, REDACTED if name in UPLOAD_TOKENS else value) for name, value in self.pairs]
        return urlencode(pairs, quote_via=quote, safe="$;,:[]") or None

    @property
    def sse(self):
        return self.get("alt") == "sse"


def parse(raw, ephemeral_token=False):
    """The Query of a raw query string (bytes or text); BadQuery for one no client of Gemini's sends.
    With `ephemeral_token` (the Live API's constrained endpoint) one access_token, spelled so, is kept."""
    if not raw:  # no query: what parse_qsl would make of it
        return _EMPTY
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not text.isascii():
        raise BadQuery("The query string must be percent-encoded ASCII.")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_PARAMETERS)
    except UnicodeDecodeError:
        raise BadQuery("The query string is not valid UTF-8.") from None
    except ValueError:
        raise BadQuery(f"The query string has more than {MAX_PARAMETERS} parameters.") from None
    kept, keys = [], []
    for name, value in pairs:
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise BadQuery("The query string holds a control character.")
        folded = name.strip().lower()
        if folded == KEY:
            keys.append(value.strip())
        elif ephemeral_token and name == "access_token" and not any(known == name for known, _ in kept):
            kept.append((name, value))
        elif folded in TOKENS:
            raise BadQuery("Send OAuth access tokens as Authorization: Bearer, not in the query string.")
        elif name in UPLOAD_TOKENS and any(known == name for known, _ in kept):
            raise BadQuery(f"The query string names {name} more than once.")
        else:
            kept.append((name, value))
    if len(keys) > 1:
        raise BadQuery("The query string carries more than one key parameter; send one credential.")
    return Query(tuple(kept), keys[0] if keys else "")


_EMPTY = Query(())
