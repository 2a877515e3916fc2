"""The grant in an upload URL opens one upload until it expires or ends: any change to it, or a grant
the proxy never gave out, is refused (in-process; the server-level proof is in test_entrances.py)."""
import time

import pytest
from hypothesis import given, strategies as st

from proxy.access.upload_grants import EndedUploads, admit
from proxy.errors import Unauthorized
from proxy.wire import credentials, query as queries, routes, upload_urls
from proxy.wire.native import NativeRequest

SERVER_KEY, KEY_ID = "grant-server-key-0123456789", "key-abcd"
PATH, UPLOAD_ID = "/upload/v1beta/files", "upload-0001"


class Pool:
    def key_with_id(self, key_id):
        return SERVER_KEY if key_id == KEY_ID else None


@pytest.fixture(autouse=True)
def in_app(app):
    with app.app_context():  # a grant naming a client looks the client up
        yield


def chunk(grant_text, upload_id=UPLOAD_ID, path=PATH):
    query = queries.parse(f"upload_id={upload_id}&{upload_urls.PARAMETER}={grant_text}")
    return NativeRequest(routes.parse(path), query, credentials.Presented())


def grant(expires):
    return upload_urls.issue(SERVER_KEY, PATH, UPLOAD_ID, KEY_ID, None, expires)


def test_a_grant_opens_its_own_upload_until_it_expires(tmp_path):
    ended, now = EndedUploads(str(tmp_path), 60), time.time()
    issued = grant(now + 60)
    assert admit(chunk(issued.text()), "PUT", "upload, finalize", None, Pool(), ended, now=now).pin == KEY_ID
    with pytest.raises(Unauthorized, match="expired"):
        admit(chunk(issued.text()), "PUT", "upload, finalize", None, Pool(), ended, now=now + 61)
    ended.end(UPLOAD_ID)
    with pytest.raises(Unauthorized, match="ended"):
        admit(chunk(issued.text()), "PUT", "query", None, Pool(), ended, now=now)


@pytest.mark.parametrize("tamper", [
    lambda g: f"{g.pin}.{g.client}.{g.expires + 86400}.{g.signature}",  # a later expiry
    lambda g: f"{g.pin}.7.{g.expires}.{g.signature}",  # another client
    lambda g: f"{upload_urls.OWN}.{g.client}.{g.expires}.{g.signature}",  # the client's own key instead
    lambda g: f"{g.pin}.{g.client}.{g.expires}.-",  # unsigned
    lambda g: f"{g.pin}.{g.client}.{g.expires}",  # a part missing
])
def test_a_changed_grant_is_refused(tmp_path, tamper):
    now = time.time()
    with pytest.raises(Unauthorized):
        admit(chunk(tamper(grant(now + 60))), "PUT", "upload, finalize", None, Pool(), EndedUploads(str(tmp_path), 60),
              now=now)


def test_a_grant_opens_no_other_upload_nor_path(tmp_path):
    now, ended = time.time(), EndedUploads(str(tmp_path), 60)
    text = grant(now + 60).text()
    for native in (chunk(text, upload_id="upload-0002"), chunk(text, path="/upload/v1/files")):
        with pytest.raises(Unauthorized):
            admit(native, "PUT", "upload, finalize", None, Pool(), ended, now=now)


@given(st.text(max_size=80))
def test_any_text_is_a_grant_or_refused_as_one(text):
    try:
        parsed = upload_urls.parse(text)
    except upload_urls.BadGrant:
        return
    assert parsed.text() == text
