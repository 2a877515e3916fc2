"""The pass-through's own header handling gives what Werkzeug's would: the client's headers read from the
environ, the answer's Headers built from pairs, and the headers a relayed answer starts with."""
import pytest
from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from proxy.passthrough.headers import NOT_FORWARDED, RelayedResponse, response_headers, sent_headers
from proxy.wire import credentials
from proxy.wire.headers import redacted


def _environ(**extra):
    environ = EnvironBuilder(path="/v1beta/models/m:generateContent", method="POST", data=b"{}", headers={
        "x-goog-api-key": "k", "Content-Type": "application/json", "X-Custom_Thing": "a", "Accept-Encoding": "gzip",
        "Host": "proxy", "X-Request-ID": "client-id-123"}).get_environ()
    environ.update(extra)
    return environ


@pytest.mark.parametrize("extra", [{}, {"CONTENT_TYPE": ""}, {"CONTENT_LENGTH": ""}, {"HTTP_CONTENT_TYPE": "x/y"},
                                   {"HTTP_": "empty name"}, {"HTTP_X_EMPTY": ""}])
def test_sent_headers_are_what_werkzeug_reads_and_forwarded_what_went_upstream(extra):
    environ = _environ(**extra)
    for _ in range(2):  # the second time from the names remembered
        sent, forwarded = sent_headers(environ)
        assert list(sent.items()) == list(dict(EnvironHeaders(environ)).items())
        expected = {name: value for name, value in sent.items() if name.lower() not in NOT_FORWARDED}
        assert forwarded == dict(expected, **{"Accept-Encoding": "identity"})


def test_credentials_from_the_environ_are_those_of_request_headers():
    environ = _environ(HTTP_AUTHORIZATION="Bearer b", HTTP_X_API_KEY="p")
    assert credentials.presented(credentials.EnvironHeaders(environ), "", native=False) == \
        credentials.presented(EnvironHeaders(environ), "", native=False)
    with pytest.raises(credentials.BadCredentials):
        credentials.presented(credentials.EnvironHeaders(_environ(HTTP_X_GOOG_API_KEY="a,b")), native=True)


def test_response_headers_hold_the_pairs_and_refuse_what_werkzeug_refuses():
    pairs = [("Content-Type", "application/json"), ("X-Thing", "1")]
    assert response_headers(list(pairs)).to_wsgi_list() == Headers(pairs).to_wsgi_list()
    with pytest.raises(ValueError):
        response_headers([("X-Bad", "a\r\nSet-Cookie: x=1")])
    assert response_headers([("X-Number", 5)]).to_wsgi_list() == [("X-Number", "5")]


@pytest.mark.parametrize("status", [200, 201, 204, 206, 301, 304, 404, 500])
@pytest.mark.parametrize("extra", [[], [("Location", "/v1beta/files/é")], [("content-location", "/x")],
                                   [("Content-Length", "5")]])
def test_a_relayed_answer_starts_with_the_headers_werkzeug_would_give_it(status, extra):
    environ = _environ()
    pairs = [("Content-Type", "application/json"), ("X-Accel-Buffering", "no"), *extra]

    def body():
        yield b"hello"

    ours = RelayedResponse(body(), status=status, headers=response_headers(list(pairs)))
    theirs = Response(body(), status=status, headers=list(pairs))
    assert ours.get_wsgi_headers(environ).to_wsgi_list() == theirs.get_wsgi_headers(environ).to_wsgi_list()


def test_redacted_hides_secrets_whatever_their_case():
    headers = {"X-Goog-Api-Key": "k", "authorization": "Bearer b", "Content-Type": "a/b", "COOKIE": "c"}
    for _ in range(2):
        assert redacted(headers) == {"X-Goog-Api-Key": "[redacted]", "authorization": "[redacted]",
                                     "Content-Type": "a/b", "COOKIE": "[redacted]"}
