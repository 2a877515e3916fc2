"""The keys listed in API_KEYS kept in step with the client table, on every start of every worker."""
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import ApiClient, db, utcnow

from . import clients

log = logging.getLogger(__name__)


def sync_env_keys(keys):
    """Make the keys in API_KEYS clients (by hash), and revoke env clients no longer listed. A key an
    operator revoked or rotated stays refused (env_key_refused) whatever API_KEYS says."""
    wanted = {clients.hash_key(key): key for key in keys}
    try:
        existing = {}
        for client in db.session.execute(select(ApiClient).where(ApiClient.source == "env")).scalars():
            digest = clients.env_digest(client)
            if digest is None:
                continue  # rotated before its API_KEYS key was remembered: no listed key is its own
            if client.env_key_hash != digest:
                client.env_key_hash = digest
            existing.setdefault(digest, client)
        for digest, key in wanted.items():
            client = existing.get(digest)
            if client is None:
                db.session.add(ApiClient(name=f"env-{digest[:8]}", key_hash=digest, env_key_hash=digest,
                                         key_prefix=clients.env_prefix(key), source="env"))
            elif client.revoked_at is not None and client.env_key_refused is None:
                client.revoked_at = None  # listed again after being dropped from API_KEYS
        for digest, client in existing.items():
            # A rotated client has a secret of its own now: dropping its old key from API_KEYS leaves it be.
            if digest not in wanted and client.revoked_at is None and client.env_key_refused is None:
                client.revoked_at = utcnow()
        if db.session.new or db.session.dirty:
            clients.changed()
        else:
            db.session.commit()  # ends the read; no worker need forget what it knows
    except IntegrityError:
        db.session.rollback()  # another worker synced the same keys first
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not sync API_KEYS into the client table")
