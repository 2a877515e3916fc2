"""proxy.upstream.url_memo: urllib3 answers what it answered, and a bad URL still fails every time."""
import pytest
import urllib3.connectionpool
import urllib3.poolmanager
from hypothesis import given, strategies as st
from urllib3.exceptions import LocationParseError
from urllib3.util import url as urls

from proxy.upstream import url_memo


def setup_module():
    url_memo.install()


@given(st.text(max_size=60))
def test_the_same_answers_as_urllib3(tail):
    url = "http://127.0.0.1:9/v1beta/" + tail
    try:
        expected = urls.parse_url(url)
    except LocationParseError:
        with pytest.raises(LocationParseError):
            urllib3.poolmanager.parse_url(url)
        return
    assert urllib3.poolmanager.parse_url(url) == urllib3.poolmanager.parse_url(url) == expected
    target = "/v1beta/" + tail
    assert urllib3.connectionpool._encode_target(target) == urls._encode_target(target)


def test_a_bad_url_fails_each_time():
    for _ in range(2):
        with pytest.raises(LocationParseError):
            urllib3.poolmanager.parse_url("http://[::1/")


def test_installed_once():
    remembered = urllib3.poolmanager.parse_url
    url_memo.install()
    assert urllib3.poolmanager.parse_url is remembered is urllib3.connectionpool.parse_url
    assert remembered is not urls.parse_url
