"""The one masking function every log line passes: generated credentials, spelled as clients and Google
spell them, in the places log lines quote them, never survive it."""
import logging
import sys

from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.observability.redact import RedactFilter, redact

# What keys and tokens are made of (Google's AIza... keys, OAuth tokens, the proxy's grants).
SECRETS = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
                  min_size=12, max_size=48)
NAMES = st.sampled_from(["key", "access_token", "oauth_token", "gemini_proxy_key", "upload_id"])
HEADERS = st.sampled_from(["x-goog-api-key", "X-Goog-Api-Key", "x-api-key", "X-API-KEY", "Authorization",
                           "HTTP_X_GOOG_API_KEY", "HTTP_AUTHORIZATION"])


@st.composite
def spelled(draw, names=NAMES):
    """A parameter name as a client may send it: each character in either case, raw or percent-encoded."""
    out = ""
    for char in draw(names):
        char = char.upper() if draw(st.booleans()) else char
        if draw(st.booleans()):
            code = f"{ord(char):02x}"
            char = "%" + (code.upper() if draw(st.booleans()) else code)
        out += char
    return out


@given(secret=SECRETS, name=spelled(), before=st.sampled_from(["", "alt=sse&", "$alt=json;enum-encoding%3Dint&"]),
       after=st.sampled_from(["", "&alt=sse", "#frag"]),
       frame=st.sampled_from(["Error handling request POST /v1beta/models/m:generateContent?{q}",
                              "Invalid HTTP request line: 'GET /upload/v1beta/files?{q}\\x01 HTTP/1.1'",
                              '127.0.0.1 "GET /v1beta/models?{q} HTTP/1.1" 200',
                              "308 Permanent Redirect: http://h/analytics/summary?{q}",
                              "http://h/x?next=%2Fv1beta%2Fmodels%3F{encoded}"]))
def test_a_query_credential_in_any_spelling_is_masked(secret, name, before, after, frame):
    assume(secret not in frame)  # a "secret" that is a word of the line itself says nothing of masking
    query = f"{before}{name}={secret}{after}"
    encoded = query.replace("=", "%3D").replace("&", "%26")
    assert secret not in redact(frame.format(q=query, encoded=encoded))


@given(secret=SECRETS, header=HEADERS, scheme=st.sampled_from(["", "Bearer ", "bearer "]),
       frame=st.sampled_from(["{h}: {s}\r\nhost: x", "{{'{h}': '{s}', 'host': 'x'}}", "[('{h}', '{s}')]",
                              '{{"{h}": "{s}"}}', "b'{h}: {s}'"]))
def test_a_credential_header_is_masked(secret, header, scheme, frame):
    assume(secret not in frame)
    assert secret not in redact(frame.format(h=header, s=scheme + secret))


def test_the_filter_masks_arguments_tracebacks_and_known_secrets():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling %s with %s",
                               ("/v1?KEY=sekrit-1", "held-secret-9"), None)
    try:
        raise RuntimeError("redirect to /v1?access_token=sekrit-2")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactFilter({"held-secret-9": "key-0123abcd"}).filter(record)
    line = logging.Formatter().format(record)
    assert "sekrit" not in line and "held-secret-9" not in line and "key-0123abcd" in line
