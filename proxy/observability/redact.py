"""Credentials masked in every line the server writes: one function, used by Gunicorn's logger and the app's.

Only the standard library (and proxy.wire.query, which is too): Gunicorn's master imports this before any
worker has patched the world.
"""
import logging
import re
from urllib.parse import unquote_plus

from ..wire import query as queries

MASK = "[redacted]"
# Query parameters that carry a credential, as the pass-through's query parser names them: Gemini's key
# and OAuth tokens, and the upload tokens (Gemini's upload id, the proxy's grant).
PARAMETERS = frozenset({queries.KEY}) | queries.TOKENS | queries.UPLOAD_TOKENS
# Headers that carry one, as sent, as a WSGI environ name (HTTP_X_API_KEY) or in a Python repr.
HEADERS = frozenset({"x-goog-api-key", "x-api-key", "authorization", "proxy-authorization"})

# name=value after a query's start or separator, raw or percent-encoded once (a URL inside a URL).
_PARAMETER = re.compile(r"(?P<lead>(?:^|(?<=[?&;\s\"'(\[,]))|%3[fF]|%26)(?P<name>[^=&;?#\s\"'<>\\]{1,64})="
                        r"(?P<value>[^&;#\s\"'<>\\]*)")
_ENCODED_PARAMETER = re.compile(r"(?P<lead>%3[fF]|%26)(?P<name>(?:(?!%26|%3[dD])[^&;?#\s\"'<>\\]){1,64})%3[dD]"
                                r"(?P<value>(?:(?!%26)[^&;#\s\"'<>\\])*)")
# "name": "value", 'name': 'value', ('name', 'value'): dicts, tuples and JSON that quote a parameter.
_QUOTED_PARAMETER = re.compile(r"(?P<lead>(?P<quote>[\"'])(?P<name>[A-Za-z_%0-9]{1,64})(?P=quote)\s*[:,]\s*"
                               r"(?:[bu](?=[\"']))?[\"'])(?P<value>[^\"'\r\n]*)")
_HEADER = re.compile(r"(?P<lead>(?<![\w-])(?:http_)?(?P<name>(?:proxy[-_])?authorization|x[-_]goog[-_]api[-_]key|"
                     r"x[-_]api[-_]key)[\"']?\s*(?:[:=,]\s*)(?:[bu](?=[\"']))?[\"']?)"
                     r"(?P<value>(?:(?:bearer|basic|token)\s+)?[^\s\"',;&]*)", re.IGNORECASE)


# Every credential's name holds one of these (or is percent-encoded): most lines have none, and are
# passed over at the cost of one search rather than four substitutions (the access log writes one a request).
_MAYBE = ("key", "token", "upload_id", "authorization", "%")


def _parameter_name(name):
    # Google decodes a parameter's name before reading it (?k%65y= is key); undo nested encodings too.
    for _ in range(3):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower()


def _masked_parameter(match):
    if _parameter_name(match.group("name")) not in PARAMETERS or not match.group("value"):
        return match.group(0)
    return match.group(0)[:match.start("value") - match.start()] + MASK


def _masked_header(match):
    return match.group("lead") + MASK if match.group("value") else match.group(0)


def redact(text):
    """`text` with the value of every credential parameter and header replaced by [redacted]."""
    if not text or not isinstance(text, str):
        return text
    lowered = text.lower()
    if not any(word in lowered for word in _MAYBE):
        return text
    text = _PARAMETER.sub(_masked_parameter, text)
    text = _ENCODED_PARAMETER.sub(_masked_parameter, text)
    text = _QUOTED_PARAMETER.sub(_masked_parameter, text)
    return _HEADER.sub(_masked_header, text)


def is_secret_header(name):
    """Whether a header (or its WSGI environ name, HTTP_X_GOOG_API_KEY) carries a credential."""
    name = name.lower().replace("_", "-")
    return (name[5:] if name.startswith("http-") else name) in HEADERS


class RedactFilter(logging.Filter):
    """Masks a record's message, arguments, traceback and stack before any handler formats it; `known`
    maps secrets the server holds to the names they are logged under (their fingerprints)."""

    def __init__(self, known=None):
        super().__init__()
        self.known = {secret: name for secret, name in (known or {}).items() if secret and len(secret) >= 6}
        self._formatter = logging.Formatter()

    def _clean(self, text):
        text = redact(text)
        for secret, name in self.known.items():
            text = text.replace(secret, name)
        return text

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it; leave it to them
            return True
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True
