"""The proxy's grant inside an upload URL it gives out: one upload, one path, one client, a bounded time.

Gemini answers the start of a resumable upload with the URL its chunks go to, and that URL is their
credential (the SDKs send chunks without a key). The proxy points it at itself and adds a grant
naming the key the upload began with, the client that began it (who is charged for its chunks) and
when it expires, signed over the upload's own path and id, so the grant opens nothing else."""
import hashlib
import hmac
from dataclasses import dataclass

PARAMETER = "gemini_proxy_key"  # the query parameter the grant travels in
OWN = "own"  # begun with the client's own Gemini key, which the proxy does not hold
NO_CLIENT = "-"  # begun while the proxy is open (no client keys)


class BadGrant(ValueError):
    """The grant is malformed: not one the proxy gave out."""


@dataclass(frozen=True)
class Grant:
    pin: str  # the server key's fingerprint, or OWN
    client: str  # the client's id, or NO_CLIENT
    expires: int  # Unix time, seconds
    signature: str

    @property
    def client_id(self):
        return None if self.client == NO_CLIENT else int(self.client)

    def text(self):
        return f"{self.pin}.{self.client}.{self.expires}.{self.signature}"


def _message(path, upload_id, pin, client, expires):
    return f"{path}\n{upload_id}\n{pin}\n{client}\n{expires}".encode()


def signature(secret, path, upload_id, pin, client, expires):
    return hmac.new(secret.encode(), _message(path, upload_id, pin, client, expires), hashlib.sha256).hexdigest()


def issue(secret, path, upload_id, pin, client_id, expires):
    """A grant for the upload at `path` with `upload_id`; unsigned ("-") when there is no secret to sign with."""
    client, expires = NO_CLIENT if client_id is None else str(int(client_id)), int(expires)
    signed = signature(secret, path, upload_id, pin, client, expires) if secret else "-"  # what verify() signs
    return Grant(pin, client, expires, signed)


def parse(text):
    pin, client, expires, signed = (text.split(".") + ["", "", "", ""])[:4] if text.count(".") == 3 else ("",) * 4
    if not pin or not (client == NO_CLIENT or client.isdigit() and len(client) < 19) \
            or not (expires.isdigit() and len(expires) < 12) or not signed:
        raise BadGrant("This upload URL is not one the proxy gave out.")
    return Grant(pin, client, int(expires), signed)


def verify(grant, secret, path, upload_id):
    """Whether `grant` was issued with `secret` for this upload."""
    if not secret:
        return grant.signature == "-"
    expected = signature(secret, path, upload_id, grant.pin, grant.client, grant.expires)
    return hmac.compare_digest(expected, grant.signature)
