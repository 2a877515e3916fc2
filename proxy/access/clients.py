"""Client keys: issue, look up, revoke, rotate and restore (API_KEYS are kept in step by env_keys)."""
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import ApiClient, db, utcnow

from ..requestctx import current_application

log = logging.getLogger(__name__)

KEY_PREFIX = "gp_"  # recognisable in config files and secret scanners
_MAX_ID = 2**63 - 1  # SQLite's (and PostgreSQL's bigint) largest integer


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret():
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ClientNotFound(LookupError):
    pass


class CannotRestore(ValueError):
    """The client has nothing an operator could restore (its old secret is not kept, or its key left API_KEYS)."""


@dataclass(frozen=True)
class Caller:
    """What a request needs to know of its client, detached from any database session."""

    id: int
    name: str
    rate_limit: Optional[str]
    daily_token_quota: Optional[int]
    budget_usd: Optional[float] = None
    budget_period: Optional[str] = None  # day | month
    models: Optional[tuple] = None  # its own allowlist; None: every model the entrance offers
    expires_at: Optional[datetime] = None  # naive UTC

    @classmethod
    def of(cls, client):
        return cls(client.id, client.name, client.rate_limit, client.daily_token_quota, client.budget_usd,
                   client.budget_period, tuple(client.models) if client.models is not None else None,
                   client.expires_at)

    def expired(self, now):
        return self.expires_at is not None and now >= self.expires_at


def _cache():
    return current_application().extensions["key_cache"]


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
        caller = Caller.of(client)
    cache.store(digest, caller)
    return caller


def find_by_id(client_id):
    """The active client of that id (the owner of an ephemeral token it was given), or None."""
    try:
        client = db.session.get(ApiClient, client_id)
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("client lookup failed", exc_info=True)
        return None
    if client is None or not client.active:
        return None
    return Caller.of(client)


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


def changed():
    db.session.commit()
    _cache().changed()


# What an operator may set on a key beside its name (access.terms checks each before it gets here).
TERMS = ("rate_limit", "daily_token_quota", "budget_usd", "budget_period", "models", "expires_at")


def create(name, rate_limit=None, daily_token_quota=None, source="cli", **terms):
    """Return (client, secret); the secret exists only in this return value. `terms`: budget_usd,
    budget_period, models, expires_at."""
    secret = new_secret()
    client = ApiClient(name=name, key_hash=hash_key(secret), key_prefix=secret[:10], source=source,
                       rate_limit=rate_limit or None, daily_token_quota=daily_token_quota, **terms)
    db.session.add(client)
    changed()
    return client, secret


def update(ref, **terms):
    """Change a key's terms (only those given; None clears one); it applies from the next request."""
    client = resolve(ref)
    for name, value in terms.items():
        if name not in TERMS:
            raise TypeError(f"unknown term {name!r}")
        setattr(client, name, value)
    changed()
    return client


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


def env_digest(client):
    """The hash of the API_KEYS key a client came from, if known. Rows from before env_key_hash existed
    still hold it as their key_hash unless they were rotated (then it is lost)."""
    if client.source != "env":
        return None
    return client.env_key_hash or (client.key_hash if client.rotated_at is None else None)


def _refuse_env_key(client, how):
    """Remember that an operator refused this client's API_KEYS key, so no start seeds it back."""
    if client.source == "env":
        client.env_key_hash = env_digest(client)
        client.env_key_refused = how


def env_prefix(key):
    return key[:4] + "…"


def revoke(ref):
    client = resolve(ref)
    if client.revoked_at is None or (client.source == "env" and client.env_key_refused != "revoked"):
        _refuse_env_key(client, "revoked")
        client.revoked_at = client.revoked_at or utcnow()
        changed()
    return client


def rotate(ref):
    """A new secret for the same client (its history stays whole); the old one stops at once."""
    client = resolve(ref)
    if not client.active:
        raise ClientNotFound(f"client {ref!r} is revoked")
    _refuse_env_key(client, "rotated")
    secret = new_secret()
    client.key_hash, client.key_prefix, client.rotated_at = hash_key(secret), secret[:10], utcnow()
    changed()
    return client, secret


def restore(ref, env_keys):
    """Undo a revocation; a client from API_KEYS (in `env_keys`) also goes back to its API_KEYS key, its
    rotated secret stopping at once. A client already active and on its first secret is left as it is."""
    client = resolve(ref)
    digest = env_digest(client)
    if digest is not None:
        if client.state == "active" and client.env_key_refused is None:
            return client
        key = next((key for key in env_keys if hash_key(key) == digest), None)
        if key is None:
            raise CannotRestore(f"Client {client.id}'s key is no longer in API_KEYS.")
        client.key_hash, client.key_prefix, client.env_key_hash = digest, env_prefix(key), digest
        client.revoked_at = client.rotated_at = client.env_key_refused = None
    elif client.revoked_at is not None:
        client.revoked_at = None
    elif client.rotated_at is not None:
        raise CannotRestore(f"Client {client.id} was rotated and its old secret is not kept; only a client "
                            "from API_KEYS goes back to its key.")
    else:
        return client
    try:
        changed()
    except IntegrityError:
        db.session.rollback()
        raise CannotRestore(f"Another client holds client {client.id}'s API_KEYS key.") from None
    return client


def all_clients():
    return db.session.execute(select(ApiClient).order_by(ApiClient.id)).scalars().all()
