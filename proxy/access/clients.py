"""Client keys: issue, look up, revoke and rotate; keys listed in API_KEYS are kept in step."""
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Optional

from flask import current_app

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import ApiClient, db, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "gp_"  # recognisable in config files and secret scanners
_MAX_ID = 2**63 - 1  # SQLite's (and PostgreSQL's bigint) largest integer


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret():
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ClientNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Caller:
    """What a request needs to know of its client, detached from any database session."""

    id: int
    name: str
    rate_limit: Optional[str]
    daily_token_quota: Optional[int]


def _cache():
    return current_app.extensions["key_cache"]


def find_active(key):
    """The active client whose key this is, or None."""
    if not key:
        return None
    digest = hash_key(key)
    cache = _cache()
    fresh, known = cache.lookup(digest)
    if fresh:
        return known
    try:
        client = db.session.execute(select(ApiClient).where(ApiClient.key_hash == digest)).scalar_one_or_none()
    except SQLAlchemyError:
        # A database fault neither locks every client out nor opens a proxy that has issued keys.
        db.session.rollback()
        log.warning("client lookup failed; using the last known answer", exc_info=True)
        return known
    # The lookup is by hash; the comparison is in constant time all the same.
    if client is None or not hmac.compare_digest(client.key_hash, digest) or not client.active:
        caller = None
    else:
        caller = Caller(client.id, client.name, client.rate_limit, client.daily_token_quota)
    cache.store(digest, caller)
    return caller


def any_issued():
    """Whether keys are in use: once any was issued, revoking them all does not open the proxy."""
    cache = _cache()
    fresh, issued = cache.issued()
    if fresh:
        return issued
    try:
        issued = db.session.execute(select(ApiClient.id).limit(1)).first() is not None
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not tell whether client keys exist; assuming not", exc_info=True)
        return False
    cache.store_issued(issued)
    return issued


def _changed():
    db.session.commit()
    _cache().changed()


def create(name, rate_limit=None, daily_token_quota=None, source="cli"):
    """Return (client, secret); the secret exists only in this return value."""
    secret = new_secret()
    client = ApiClient(name=name, key_hash=hash_key(secret), key_prefix=secret[:10], source=source,
                       rate_limit=rate_limit or None, daily_token_quota=daily_token_quota)
    db.session.add(client)
    _changed()
    return client, secret


def resolve(ref):
    """A client by id or by name (the newest of that name)."""
    if str(ref).isdigit() and int(ref) > _MAX_ID:
        raise ClientNotFound(f"no client {ref!r}")  # beyond what the database can even hold
    query = select(ApiClient)
    query = query.where(ApiClient.id == int(ref)) if str(ref).isdigit() else \
        query.where(ApiClient.name == ref).order_by(ApiClient.id.desc())
    client = db.session.execute(query.limit(1)).scalar_one_or_none()
    if client is None:
        raise ClientNotFound(f"no client {ref!r}")
    return client


def revoke(ref):
    client = resolve(ref)
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        _changed()
    return client


def rotate(ref):
    """A new secret for the same client (its history stays whole); the old one stops at once."""
    client = resolve(ref)
    if not client.active:
        raise ClientNotFound(f"client {ref!r} is revoked")
    secret = new_secret()
    client.key_hash, client.key_prefix, client.rotated_at = hash_key(secret), secret[:10], utcnow()
    _changed()
    return client, secret


def all_clients():
    return db.session.execute(select(ApiClient).order_by(ApiClient.id)).scalars().all()


def sync_env_keys(keys):
    """Make the keys in API_KEYS clients (by hash), and revoke env clients no longer listed."""
    wanted = {hash_key(key): key for key in keys}
    try:
        existing = {c.key_hash: c for c in db.session.execute(
            select(ApiClient).where(ApiClient.source == "env")).scalars()}
        for digest, key in wanted.items():
            client = existing.get(digest)
            if client is None:
                db.session.add(ApiClient(name=f"env-{digest[:8]}", key_hash=digest, key_prefix=key[:4] + "…",
                                         source="env"))
            elif client.revoked_at is not None:
                client.revoked_at = None
        for digest, client in existing.items():
            if digest not in wanted and client.revoked_at is None:
                client.revoked_at = utcnow()
        _changed()
    except IntegrityError:
        db.session.rollback()  # another worker synced the same keys first
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not sync API_KEYS into the client table")
