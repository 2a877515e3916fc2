"""Admitting an upload's chunk on the grant in its URL, and remembering which uploads have ended.

A grant opens exactly one thing: the chunk and status calls of the upload it was issued for, at the
path it was issued for, until it expires or the upload ends, for a client that is still active. The
path it is checked against is the parsed route's, so no spelling of the path reaches anything else."""
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from models import ApiClient, db

from ..errors import Unauthorized
from ..wire import upload_urls
from .clients import Caller

log = logging.getLogger(__name__)

CHUNK_METHODS = ("POST", "PUT")
CHUNK_COMMANDS = frozenset({"upload", "finalize", "query", "cancel"})


@dataclass(frozen=True)
class UploadPass:
    pin: str  # the server key's fingerprint the chunk goes on with, or upload_urls.OWN
    client: Optional[Caller]  # who began the upload, and is charged for it


class EndedUploads:
    """Uploads that answered `final`, one empty file each, so every worker on the host refuses their URL."""

    def __init__(self, folder, seconds, clock=time.time):
        self.folder, self.seconds, self.clock = folder, seconds, clock

    def _path(self, upload_id):
        return os.path.join(self.folder, hashlib.sha256(upload_id.encode()).hexdigest()[:32])

    def ended(self, upload_id):
        return os.path.exists(self._path(upload_id))

    def end(self, upload_id):
        try:
            os.makedirs(self.folder, exist_ok=True)
            open(self._path(upload_id), "ab").close()
            self._forget_expired()
        except OSError:
            log.warning("could not mark upload as ended; its URL still expires in time", exc_info=True)

    def _forget_expired(self):
        # A grant outlives no upload by more than `seconds`, so neither need its mark.
        horizon = self.clock() - self.seconds
        for entry in os.scandir(self.folder):
            if entry.stat().st_mtime < horizon:
                os.remove(entry.path)


def _client_row(client_id):
    try:
        return db.session.execute(select(ApiClient).where(ApiClient.id == client_id)).scalar_one_or_none()
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not look up the client of an upload", exc_info=True)
        return None


def _refused(message):
    return Unauthorized(message)


def admit(native, method, command, presented_client, pool, ended_uploads, now=None):
    """The UploadPass for a chunk sent to an upload URL the proxy gave out; Unauthorized when it is not one."""
    try:
        grant = upload_urls.parse(native.query.get(upload_urls.PARAMETER))
    except upload_urls.BadGrant as exc:
        raise _refused(str(exc)) from None
    words = {word.strip().lower() for word in command.split(",") if word.strip()}
    if method not in CHUNK_METHODS or not words or not words <= CHUNK_COMMANDS:
        raise _refused("An upload URL serves only its own upload's chunks and status.")
    if grant.expires < (time.time() if now is None else now):
        raise _refused("This upload URL has expired; begin the upload again.")
    upload_id = native.query.get("upload_id")
    if not upload_id or ended_uploads.ended(upload_id):
        raise _refused("This upload has ended; begin another.")
    row = _client_row(grant.client_id) if grant.client_id is not None else None
    if grant.client_id is not None and (row is None or not row.active):
        raise _refused("The client that began this upload is revoked.")
    if presented_client is not None and presented_client.id != grant.client_id:
        raise _refused("This upload was begun by another client.")
    caller = presented_client or (Caller(row.id, row.name, row.rate_limit, row.daily_token_quota) if row else None)
    if grant.pin == upload_urls.OWN:
        secret = row.key_hash if row is not None else None
    else:
        secret = pool.key_with_id(grant.pin)
        if secret is None:
            if caller is not None and presented_client is not None:
                return UploadPass(grant.pin, caller)  # past the key check: the forwarder says the key is gone
            raise _refused("This upload URL is not one the proxy gave out.")
    if not upload_urls.verify(grant, secret, native.route.upstream(), upload_id):
        raise _refused("This upload URL is not one the proxy gave out.")
    return UploadPass(grant.pin, caller)
