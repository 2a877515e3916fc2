"""A lock for the whole deployment, held in the database every instance shares: PostgreSQL's advisory lock
on a connection of its own; with SQLite, nothing to take (the database, and so the host lock beside it,
is on one host already)."""
import hashlib
import logging
from contextlib import contextmanager

from sqlalchemy import text

log = logging.getLogger(__name__)

_NAMESPACE = "gemini-proxy:"  # so our keys differ from any other application's on the same database


def lock_key(name):
    """The advisory lock's bigint for `name`: the same in every process and version (no hash())."""
    digest = hashlib.blake2b((_NAMESPACE + name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def deployment_lock(engine, name):
    """True inside when this process holds the deployment's lock `name`, False when another process (of
    any instance) holds it. Never waits.

    On PostgreSQL the lock is a session-level pg_try_advisory_lock on a connection taken out of the pool
    (detached): it is closed when the job ends, so the lock never lingers on a pooled connection, and if
    the process dies its connection closes and the server frees the lock with it. On SQLite every
    instance is on the one host that holds the file, so the caller's host lock (a flock beside the
    file) already is deployment-wide: this yields True."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    connection = engine.connect()
    try:
        connection.detach()  # closing it ends the session: no other job inherits the lock from the pool
        held = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(name)}).scalar()
        connection.commit()  # hold no transaction open for the job's length; the session lock outlives it
        yield bool(held)
    finally:
        # Closing the session releases its advisory locks; an explicit unlock would say the same twice.
        connection.close()
