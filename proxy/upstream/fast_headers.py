"""HTTP/1.1 answers' headers read in one pass when they are plain, instead of through the email parser.

http.client hands every response's header block to email.parser, about 170 Python calls for Gemini's
eight headers: a twelfth of a pass-through request's calls. A block of plain `Name: value` lines (the
only kind Gemini sends) is read here into the same HTTPMessage, with one regular expression; any other
block (a folded line, a stray carriage return, a line without a colon, a multipart or message content
type) goes to the email parser as before, so every caller sees what it saw. Installed once per process
by session.upstream_pool: http.client looks parse_headers up by name on every response."""
import email.parser
import http.client
import re

# A header line as the email parser reads it (email.feedparser.headerRE): a name of printable ASCII but
# the colon, then the value after any spaces or tabs, to the line's end.
_LINE = r"[\041-\071\073-\176]+:[^\r\n]*\r?\n"
_PLAIN = re.compile(f"(?:{_LINE})*\r?\n")
_FIELDS = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*)\r?\n")
# Content types the email parser reads a body for (none here), noting defects urllib3 then looks at.
_PARSED_TYPES = re.compile(r"^content-type:[^\n]*(multipart|message)", re.IGNORECASE | re.MULTILINE)

_email_parse = http.client.parse_headers


def parse_headers(fp, _class=http.client.HTTPMessage):
    """http.client.parse_headers, reading the lines the same way and answering the same message."""
    hstring = b"".join(http.client._read_headers(fp)).decode("iso-8859-1")
    if _PLAIN.fullmatch(hstring) is None or _PARSED_TYPES.search(hstring) is not None:
        return email.parser.Parser(_class=_class).parsestr(hstring)
    message = _class()
    message._headers = _FIELDS.findall(hstring)
    message._payload = ""  # what the email parser leaves after the blank line that ends the block
    return message


def install():
    if http.client.parse_headers is _email_parse:
        http.client.parse_headers = parse_headers
