"""proxy.upstream.fast_headers answers what http.client's email parser answers, for any header block."""
import email.parser
import http.client
import io

from hypothesis import example, given, settings, strategies as st

from proxy.upstream import fast_headers

_NAME = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=12)
_VALUE = st.text(st.characters(max_codepoint=0xff, exclude_characters="\n"), max_size=20)
_LINE = st.one_of(
    st.builds(lambda name, value, end: f"{name}:{value}{end}", _NAME, _VALUE, st.sampled_from(["\r\n", "\n"])),
    st.builds(lambda text, end: text + end, _VALUE, st.sampled_from(["\r\n", "\n", "\r"])),  # anything at all
    st.sampled_from(["Content-Type: multipart/mixed\r\n", "Content-Type: message/rfc822\r\n", " folded\r\n",
                     "From someone\r\n", "Content-Type: text/plain\r\n", ":no name\r\n"]),
)


def _block(lines, end):
    return ("".join(lines) + end).encode("iso-8859-1")


def _email_parsed(raw):
    headers = http.client._read_headers(io.BytesIO(raw))
    return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(b"".join(headers).decode("iso-8859-1"))


def _shape(message):
    """A message's every attribute, comparable: defects by type (they have no __eq__), parts by shape."""
    payload = message._payload
    return {**vars(message), "defects": [type(defect) for defect in message.defects],
            "_payload": [_shape(part) for part in payload] if isinstance(payload, list) else payload}


@settings(max_examples=400)
@given(st.lists(_LINE, max_size=8), st.sampled_from(["\r\n", "\n", ""]))
@example(["content-type: application/json; charset=UTF-8\r\n", "Vary: Origin\r\n", "X-Empty:\r\n",
          "X-Spaces: \t a b  \r\n", "X-Latin: caf\xe9\x85\r\n"], "\r\n")
def test_the_same_message_as_the_email_parser(lines, end):
    raw = _block(lines, end)
    ours, theirs = fast_headers.parse_headers(io.BytesIO(raw)), _email_parsed(raw)
    assert _shape(ours) == _shape(theirs)
    assert ours.items() == theirs.items() and ours.is_multipart() == theirs.is_multipart()


def test_reads_only_the_header_block(monkeypatch):
    monkeypatch.setattr(email.parser, "Parser", None)  # a plain block never reaches the email parser
    stream = io.BytesIO(b"A: 1\r\nB: 2\r\n\r\nbody")
    assert fast_headers.parse_headers(stream).items() == [("A", "1"), ("B", "2")]
    assert stream.read() == b"body"


def test_installed_for_http_client():
    fast_headers.install()
    assert http.client.parse_headers is fast_headers.parse_headers
