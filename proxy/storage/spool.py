"""Records the database would not take, kept in local append-only files until it takes them again.

Each process appends to its own file under an exclusive lock. A replayer claims a file by renaming
it, so appends that come later start a new file, and takes the lock before reading, so an append
already under way finishes first. Replaying skips request ids the database already holds: a record
is written once, however often a replay is interrupted and started again."""
import base64
import fcntl
import glob
import json
import logging
import os
import time
from datetime import datetime

log = logging.getLogger(__name__)


def _encode(value):
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    return value


def _decode(value):
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
    return value


def columns_of(instance):
    """An ORM row's own columns, without keys the database assigns."""
    table = type(instance).__table__
    return {column.key: _encode(getattr(instance, column.key)) for column in table.columns
            if not column.primary_key and not column.foreign_keys}


def restore(entity, values):
    return entity(**{key: _decode(value) for key, value in values.items()})


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _own_path(self):
        return os.path.join(self.directory, f"spool-{os.getpid()}.jsonl")

    def append(self, record):
        """Append one record durably; raises OSError only when the local disk refuses it too."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        path = self._own_path()
        while True:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                try:
                    same = os.fstat(descriptor).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:  # not claimed by a replayer between our open and our lock
                    os.write(descriptor, line)
                    os.fsync(descriptor)
                    return
            finally:
                os.close(descriptor)

    def files(self):
        return sorted(glob.glob(os.path.join(self.directory, "spool-*.jsonl")) +
                      glob.glob(os.path.join(self.directory, "*.replaying")))

    def depth(self):
        """How many records wait to be replayed."""
        count = 0
        for path in self.files():
            try:
                with open(path, "rb") as handle:
                    count += sum(1 for line in handle if line.strip())
            except FileNotFoundError:
                continue
        return count

    def _claim(self, path):
        if path.endswith(".replaying"):
            owner = int(path.rsplit(".", 2)[-2])
            if owner != os.getpid() and _alive(owner):
                return None  # another process is replaying it now
        claimed = os.path.join(self.directory, f"claimed-{time.time_ns()}.{os.getpid()}.replaying")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def replay(self, save):
        """Hand every spooled record to `save(record)`, which returns True when it wrote the record
        and False when the database already had it. Stops at the first record `save` cannot write
        (it raises), keeping that file for the next run. Returns (written, already_there)."""
        written = duplicates = 0
        for path in self.files():
            claimed = self._claim(path)
            if claimed is None:
                continue
            with open(claimed, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # an append under way finishes first
                lines = handle.read().splitlines()
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.error("spool file %s has an unreadable line (a process died writing it); skipped",
                              os.path.basename(claimed))
                    continue
                if save(record):
                    written += 1
                else:
                    duplicates += 1
            os.remove(claimed)
        return written, duplicates
