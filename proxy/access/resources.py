"""Who owns each stateful resource made through a server key, and on which key it lives.

The table (owned_resources) is shared by every worker and instance on the database; each worker keeps
what it has read, because an owner and a key never change once recorded (a deletion is the only change,
and a deleted resource answers 404 at Google all the same)."""
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from models import OwnedResource, db, utcnow
from ..wire.references import SIGNATURES, STATEFUL

log = logging.getLogger(__name__)

_MAX_ENTRIES = 50_000  # owners remembered per worker
_IN_CLAUSE = 500  # names asked for in one query
KINDS = STATEFUL | {"models", SIGNATURES, "liveSessions"}  # models: their long-running operations; liveSessions: resumption handles


@dataclass(frozen=True)
class Owner:
    name: str
    kind: str
    key_id: str  # the server key's fingerprint
    client_id: Optional[int]  # None: made while the proxy had no client keys
    model: Optional[str] = None

    def belongs_to(self, client_id):
        return self.client_id == client_id


class ResourceOwners:
    """The ownership table behind a per-worker cache of what has been read."""

    def __init__(self, max_entries=_MAX_ENTRIES):
        self.max_entries = max_entries
        self._known = OrderedDict()  # name -> Owner

    def _remember(self, owner):
        self._known[owner.name] = owner
        self._known.move_to_end(owner.name)
        if len(self._known) > self.max_entries:
            self._known.popitem(last=False)

    def find(self, names):
        """{name: Owner} for those of `names` the proxy recorded and that are not deleted."""
        found, wanted = {}, []
        for name in names:
            if name in self._known:
                found[name] = self._known[name]
            else:
                wanted.append(name)
        for start in range(0, len(wanted), _IN_CLAUSE):
            rows = db.session.execute(select(OwnedResource).where(
                OwnedResource.name.in_(wanted[start:start + _IN_CLAUSE]), OwnedResource.deleted_at.is_(None)))
            for row in rows.scalars():
                owner = Owner(row.name, row.kind, row.key_id, row.client_id, row.model)
                self._remember(owner)
                found[owner.name] = owner
        db.session.commit()  # end the read, so the next request sees what other workers wrote since
        return found

    def record(self, names, key_id, client_id, model=None):
        """Record resources made on `key_id` for `client_id`; a name already recorded keeps its owner."""
        names = [name for name in dict.fromkeys(names) if name not in self._known]
        if not names:
            return
        existing = self.find(names)
        fresh = [name for name in names if name not in existing]
        try:
            for name in fresh:
                db.session.add(OwnedResource(name=name, kind=name.split("/")[0], key_id=key_id,
                                             client_id=client_id, model=model))
            db.session.commit()
        except SQLAlchemyError:
            # Another worker recorded one of them first (the same answer seen twice): theirs stands.
            db.session.rollback()
            for name in fresh:
                self._record_one(name, key_id, client_id, model)
            return
        for name in fresh:
            self._remember(Owner(name, name.split("/")[0], key_id, client_id, model))

    def _record_one(self, name, key_id, client_id, model):
        try:
            db.session.add(OwnedResource(name=name, kind=name.split("/")[0], key_id=key_id, client_id=client_id,
                                         model=model))
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()

    def deleted(self, name):
        """A resource (and what it holds: a store's documents) was deleted at Google."""
        self._known.pop(name, None)
        for held in [known for known in self._known if known.startswith(name + "/")]:
            self._known.pop(held, None)
        db.session.execute(update(OwnedResource).where(
            (OwnedResource.name == name) | OwnedResource.name.startswith(name + "/", autoescape=True),
            OwnedResource.deleted_at.is_(None)).values(deleted_at=utcnow()))
        db.session.commit()

    def keys_holding(self, client_id, kind, parent=None):
        """The fingerprints of the keys that hold the client's resources of a kind (under `parent`)."""
        query = select(OwnedResource.key_id).where(OwnedResource.deleted_at.is_(None)).distinct()
        if parent:
            query = query.where(OwnedResource.name.startswith(parent + "/", autoescape=True))
        else:
            query = query.where(OwnedResource.kind == kind)
        query = query.where(OwnedResource.client_id.is_(None) if client_id is None
                            else OwnedResource.client_id == client_id)
        held = sorted(db.session.execute(query).scalars())
        db.session.commit()
        return held


def all_resources(kind=None, client_id=None, limit=100, offset=0):
    """Every recorded resource, for the admin: newest first."""
    query = select(OwnedResource).order_by(OwnedResource.created_at.desc(), OwnedResource.name)
    if kind:
        query = query.where(OwnedResource.kind == kind)
    if client_id is not None:
        query = query.where(OwnedResource.client_id == client_id)
    return list(db.session.execute(query.limit(limit).offset(offset)).scalars())
