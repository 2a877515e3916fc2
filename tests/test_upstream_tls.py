"""Gemini is reached over TLS, as in production: both APIs, a stream and an official SDK through the proxy
to an HTTPS emulator whose certificate the proxy verifies; an untrusted certificate refused at once with
a message that says what to do; and the operator's HTTPS egress proxy used as a CONNECT tunnel."""
import ssl

import pytest
import requests
import urllib3

from proxy.upstream.failures import untrusted_certificate
from tests import processes
from tests.conftest import KEYS, private_authority, rows, wait_for
from tests.conftest import generate_over_http as generate
from tests.conftest import native_over_http as native
from tests.upstream_checks import both_apis_a_stream_and_the_sdk

pytestmark = pytest.mark.e2e

HIDDEN_HOST = "gemini.invalid"  # resolves nowhere: only the egress proxy reaches it


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    """A private CA, its certificate in ca.pem, and a server certificate it signed for the emulator."""
    return private_authority(tmp_path_factory.mktemp("tls"), "localhost", "127.0.0.1", HIDDEN_HOST)


@pytest.fixture(scope="module")
def tls_emulator(authority):
    process = processes.start_emulator(str(authority), KEYS, certfile=str(authority / "server.pem"),
                                       cafile=str(authority / "ca.pem"))
    yield process
    process.stop()


def emulated_requests(emulator):
    return requests.get(f"{emulator.url}/_emulator/requests", verify=emulator.verify, timeout=10).json()


def test_both_apis_and_a_stream_reach_gemini_over_verified_tls(gunicorn, tls_emulator, authority):
    server = gunicorn(GEMINI_BASE_URL=tls_emulator.url, SSL_CERT_FILE=str(authority / "ca.pem"), WEB_CONCURRENCY=1)
    both_apis_a_stream_and_the_sdk(server, "TLS")
    hosts = [seen["headers"]["host"] for seen in emulated_requests(tls_emulator)[-4:]]
    assert all(host.startswith("localhost:") for host in hosts)


def test_a_certificate_no_trusted_authority_signed_is_refused_at_once(gunicorn, tls_emulator):
    # The system's authorities only: the emulator's private CA is not among them.
    server = gunicorn(GEMINI_BASE_URL=tls_emulator.url, WEB_CONCURRENCY=1)
    seen_before = len(emulated_requests(tls_emulator))
    refused = generate(server, "to an untrusted host")
    assert refused.status_code == 502
    error = refused.json()["error"]
    assert error["code"] == "UPSTREAM_ERROR" and "TLS certificate is not trusted" in error["message"]
    assert "SSL_CERT_FILE" in error["message"]
    forwarded = native(server, "native, to an untrusted host")
    assert forwarded.status_code == 502 and forwarded.json()["error"]["status"] == "UNAVAILABLE"
    assert "TLS certificate is not trusted" in forwarded.json()["error"]["message"]
    assert len(emulated_requests(tls_emulator)) == seen_before  # no request crossed
    # One attempt each: neither retried nor tried on the next model, which sits behind the same host.
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(2,)], message="two records")
    assert rows(server.database_url, "SELECT outcome, count(*) FROM attempts GROUP BY outcome") == [("untrusted", 2)]
    output = server.output()
    assert output.count("TLS certificate is not trusted here") >= 2 and "Traceback" not in output


def test_both_apis_reach_gemini_through_the_operators_https_proxy(gunicorn, tls_emulator, authority, tmp_path):
    tunnel = processes.start_connect_proxy(str(tmp_path), {f"{HIDDEN_HOST}:443": f"127.0.0.1:{tls_emulator.port}"})
    try:
        server = gunicorn(GEMINI_BASE_URL=f"https://{HIDDEN_HOST}", HTTPS_PROXY=tunnel.url,
                          SSL_CERT_FILE=str(authority / "ca.pem"), WEB_CONCURRENCY=1)
        assert generate(server, "through the tunnel").status_code == 200
        assert native(server, "native, through the tunnel").json()["candidates"]
        assert [seen["headers"]["host"] for seen in emulated_requests(tls_emulator)[-2:]] == [HIDDEN_HOST] * 2
        assert f"CONNECT {HIDDEN_HOST}:443" in tunnel.output()
    finally:
        tunnel.stop()


def test_only_a_failed_verification_counts_as_an_untrusted_certificate():
    verification = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    through_a_proxy = urllib3.exceptions.ProxyError("tunnel", urllib3.exceptions.SSLError(verification))
    assert untrusted_certificate(through_a_proxy) == "certificate verify failed"
    # A handshake cut short may pass on the next try: it stays a transient failure.
    assert untrusted_certificate(urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred"))) is None
    assert untrusted_certificate(urllib3.exceptions.NewConnectionError(None, "refused")) is None
