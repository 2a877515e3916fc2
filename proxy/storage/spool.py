"""Every record passes through local append-only files on its way to the database, and stays there
until the database has taken it.

Each process appends to its own file under an exclusive lock. A writer claims a file by renaming it,
so appends that come later start a new file, and takes the lock before reading, so an append already
under way finishes first. Writing skips request ids the database already holds: a record is written
once, however often a write is interrupted and started again. Appends are not fsynced: the page cache
outlives a worker that is killed, and an fsync per request would cost more than the database write
this file saves the request from.

Each line begins with the time it was spooled, so /health knows how long the oldest record has waited
however often its file is appended to. The requests a worker holds are noted in a file of their own
(storage.inflight), so that survivors can record those a dead worker took with it."""
import array
import base64
import bisect
import errno
import fcntl
import glob
import json
import logging
import os
import re
import threading
import time
import weakref
from datetime import datetime

import orjson

log = logging.getLogger(__name__)


def _encode(value):
    if value.__class__ is datetime:  # the usual: no call to find out
        return {"$dt": value.isoformat()}
    if value.__class__ is bytes:
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"a record cannot hold {type(value).__name__}")


def _decode(mapping):
    if len(mapping) == 1:
        if "$dt" in mapping:
            return datetime.fromisoformat(mapping["$dt"])
        if "$b64" in mapping:
            return base64.b64decode(mapping["$b64"])
    return mapping


# One encoder for every line: json.dumps with these arguments would build a new one each time. It writes
# what orjson will not (an integer past 64 bits, a string with a lone surrogate), as the spool always has.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_encode)
# orjson is five times faster both ways, and a record is spooled and read back on every request. Datetimes,
# dataclasses and subclasses of str or int go to _encode, as they went to the json encoder. (It writes a
# NaN as null, where json wrote NaN: no record holds one, since no JSON body the proxy takes can.)
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | \
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_APPEND_NEWLINE
# orjson reads an integer past 64 bits as a float: a line that gives a float this large (only the json
# encoder writes such integers) is read again by json, which keeps every digit.
_LARGE = 2.0 ** 63


class _LongInteger(Exception):
    """orjson read a number as a float that may have been an integer."""


def encode(record):
    try:
        return orjson.dumps(record, default=_encode, option=_ORJSON_OPTIONS)
    except TypeError:
        return (_ENCODER.encode(record) + "\n").encode("utf-8")


def _revive(value):
    """What json's object_hook=_decode makes of `value`, done in place after orjson read it (a loop, not a
    call a level: this runs for every record the writer reads back); _LongInteger at a float past _LARGE."""
    if type(value) is dict and len(value) == 1 and ("$dt" in value or "$b64" in value):
        return _decode(value)
    if type(value) is float and not -_LARGE < value < _LARGE:
        raise _LongInteger
    pending = [value] if type(value) is dict or type(value) is list else []
    while pending:
        container = pending.pop()
        for name, item in (container.items() if type(container) is dict else enumerate(container)):
            kind = type(item)
            if kind is dict:
                if len(item) != 1:
                    pending.append(item)
                elif "$dt" in item:
                    container[name] = datetime.fromisoformat(item["$dt"])
                elif "$b64" in item:
                    container[name] = base64.b64decode(item["$b64"])
                else:
                    pending.append(item)
            elif kind is list:
                pending.append(item)
            elif kind is float and not -_LARGE < item < _LARGE:
                raise _LongInteger
    return value


def decode(line):
    """The record of a spooled line; ValueError if the line is not one (a torn write)."""
    if isinstance(line, bytes):
        try:
            return _revive(orjson.loads(line))
        except (orjson.JSONDecodeError, _LongInteger):
            pass  # json's own message, a lone surrogate orjson refuses and json reads, or a long integer
    return json.loads(line, object_hook=_decode)


# A spooled line: {"spooled_at":<seconds since the epoch>, then the record's own keys. Found without
# anchoring at line starts (which makes the search nine times slower): a record's own strings are
# JSON-escaped, so these unescaped quotes begin a line or nothing.
_SPOOLED_AT = "spooled_at"
_STAMPED = re.compile(rb'\{"spooled_at":([0-9.]+),')


def _stamped(record):
    return b'{"%s":%.3f,' % (_SPOOLED_AT.encode(), time.time()) + encode(record)[1:]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(path):
    """The pid in spool-<pid>.jsonl or claimed-<ns>.<pid>.replaying."""
    name = os.path.basename(path)
    return int(name.rsplit(".", 2)[-2] if name.endswith(".replaying") else name[len("spool-"):-len(".jsonl")])


# Records an open file's appends keep for its writer, at most: beyond, it reads them back from the file
# (a writer claims the file every few seconds, even while the database refuses them).
_KEPT_MAX = 10_000
# What is read of a file to tell it from another that took its name and inode.
_HEAD_BYTES = 64
_READ_BYTES = 1 << 20


class Spool:
    def __init__(self, directory):
        self.directory = directory
        # path: (inode, first bytes, bytes counted, lines in them), for the two counts /health asks for
        self._counted_waiting, self._counted_rejected = {}, {}
        # This process's file, open for appending, its inode, and what closes it.
        self._descriptor = self._file_pid = self._file_inode = self._closer = None
        self._path = self._path_pid = None  # this process's file, and whose it is
        # What append was given to keep for each line it added to the open file, in order (None once past
        # _KEPT_MAX): a writer claiming that file takes these instead of reading the lines back.
        self._kept = []
        self._appending = threading.Lock()
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            log.exception("the spool folder %s cannot be made; records are held in memory meanwhile", directory)

    def _own_path(self):
        pid = os.getpid()
        if self._path_pid != pid:  # made once per process, not on every append
            self._path, self._path_pid = os.path.join(self.directory, f"spool-{pid}.jsonl"), pid
        return self._path

    def _own_descriptor(self, path):
        """This process's file, open for appending: opened once, and again after a writer claimed it or in a
        forked child (whose copy of its parent's is closed, which leaves the parent's open)."""
        pid = os.getpid()
        if self._closer is None or self._file_pid != pid:
            self._let_go()
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # the folder is gone (or was never made): make it, once
                os.makedirs(self.directory, exist_ok=True)
                descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._closer = weakref.finalize(self, os.close, descriptor)  # a Spool let go of closes it
            self._descriptor, self._file_pid = descriptor, pid
            self._file_inode = os.fstat(descriptor).st_ino
        return self._descriptor

    def _let_go(self):
        if self._closer is not None:
            self._closer()
            self._closer = None
        self._kept = []  # they were the old file's

    def append(self, record, keep=None):
        """Append one record; raises OSError only when the local disk refuses it. `keep` (what the record
        was made from) is what replay hands its writer in place of the line, when this Spool wrote the
        whole file."""
        line = _stamped(record)
        path = self._own_path()
        # The file stays open between appends (an open and a close a request cost more than the write);
        # the lock keeps this process's threads apart as flock keeps other processes' writers out.
        with self._appending:
            while True:
                descriptor = self._own_descriptor(path)
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                try:
                    try:
                        same = os.stat(path).st_ino == self._file_inode
                    except FileNotFoundError:
                        same = False
                    if same:  # not claimed by a writer since it was opened
                        written = os.write(descriptor, line)
                        if written != len(line):
                            # The lock keeps other appends out, so ours is the file's last `written` bytes.
                            os.ftruncate(descriptor, os.fstat(descriptor).st_size - written)  # a torn line
                            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the spool's disk took part of a record)")
                        if self._kept is not None:
                            self._kept.append(record if keep is None else keep)
                            if len(self._kept) > _KEPT_MAX:
                                self._kept = None  # the file is read back instead
                        return
                finally:
                    fcntl.flock(descriptor, fcntl.LOCK_UN)
                self._let_go()  # claimed: this record begins the next file

    def files(self):
        return sorted(glob.glob(os.path.join(self.directory, "spool-*.jsonl")) +
                      glob.glob(os.path.join(self.directory, "*.replaying")))

    def reject(self, record, reason):
        """Keep a record the database refuses as invalid apart, for an operator to look at; it is not
        retried, so that it never holds back the records behind it."""
        line = encode({"reason": reason, "record": record})
        with open(os.path.join(self.directory, f"rejected-{os.getpid()}.jsonl"), "ab") as handle:
            handle.write(line)
        log.error("the database refused the record of request %s as invalid (%s); it is kept in %s",
                  record.get("request_id"), reason, self.directory)

    def rejected(self):
        """How many records the database refused as invalid."""
        paths = glob.glob(os.path.join(self.directory, "rejected-*.jsonl"))
        return sum(lines for lines, _ in self._count(paths, self._counted_rejected))

    def waiting(self, stale_seconds):
        """(records waiting to be written, those of them spooled `stale_seconds` ago or more, seconds the
        oldest has waited). A healthy worker writes its records within moments, so the second count is
        of records the database would not take (or a dead worker's, until another replays them). A file
        a busy worker appends to all the time holds old records as well as new ones: it is each line's
        time that counts, not the file's."""
        depth = stuck = 0
        oldest = None
        now = time.time()
        for lines, times in self._count(self.files(), self._counted_waiting):
            depth += lines
            stuck += bisect.bisect_right(times, now - stale_seconds)
            if times:
                oldest = times[0] if oldest is None else min(oldest, times[0])
        return depth, stuck, round(max(0.0, now - oldest), 3) if oldest is not None else 0.0

    @staticmethod
    def _count(paths, counted):
        """[(records, when each was spooled, in order)] of the files still there. Files only grow until
        they are claimed or removed, so only what was appended since the last count is read: /health
        asks often, and in a long outage a file holds tens of megabytes (30,000 records: 35 ms to read
        whole, on the worker's loop). `counted` (path: what is known of it) keeps these files only."""
        known = dict(counted)
        counted.clear()
        results = []
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    status = os.fstat(handle.fileno())
                    head = handle.read(_HEAD_BYTES)
                    inode, known_head, offset, times = known.get(path, (None, b"", 0, None))
                    if inode != status.st_ino or not head.startswith(known_head) or status.st_size < offset:
                        offset, times = 0, array.array("d")  # a new file under this name
                    handle.seek(offset)
                    partial = b""  # a line still being appended is counted next time
                    while chunk := handle.read(_READ_BYTES):
                        chunk = partial + chunk
                        whole = chunk.rfind(b"\n") + 1
                        _read_times(chunk[:whole], times, status.st_mtime)
                        offset += whole
                        partial = chunk[whole:]
            except FileNotFoundError:
                continue
            counted[path] = (status.st_ino, head, offset, times)
            results.append((len(times), times))
        return results

    def _claimable(self, path, own_only):
        owner = _owner(path)
        if owner == os.getpid():
            return True
        return not own_only and not alive(owner)  # a live worker writes its own files

    def _claim(self, path):
        """(the name `path` now has, or None if another writer took it; what this Spool kept of its lines,
        or None if it was not the file this Spool appends to)."""
        claimed = os.path.join(self.directory, f"claimed-{time.time_ns()}.{os.getpid()}.replaying")
        with self._appending:  # no append of this process's threads lands between the look and the rename
            kept = None
            if path == self._own_path() and self._closer is not None and self._file_pid == os.getpid():
                try:
                    if os.stat(path).st_ino == self._file_inode:
                        kept, self._kept = self._kept, []
                except FileNotFoundError:
                    pass
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                return None, None
        return claimed, kept

    def replay(self, write, per_write, own_only=False):
        """Hand the records of each file this process may take to `write(records, tried)`, at most
        `per_write` at a time; it returns (written, already there). `tried` is False for a file no writer
        has claimed before, whose records cannot be in the database yet. Stops at the first batch `write`
        cannot take (it raises), keeping that file, batches written before it included, for the next
        run. Returns (written, already there) over all files."""
        written = duplicates = 0
        for path in self.files():
            if not self._claimable(path, own_only):
                continue
            claimed, kept = self._claim(path)
            if claimed is None:
                continue
            with open(claimed, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # an append under way finishes first
                lines = [line for line in handle.read().splitlines() if line.strip()]
            # As many lines as this Spool appended: they are its own, all of them (lines only accumulate,
            # and any another process or Spool had left would be more), so what it kept stands for them.
            kept = kept if kept is not None and len(kept) == len(lines) else None
            tried = path.endswith(".replaying")
            for start in range(0, len(lines), per_write):
                records = kept[start:start + per_write] if kept is not None else \
                    self._decode(lines[start:start + per_write], claimed)
                if records:
                    done, already = write(records, tried=tried)
                    written, duplicates = written + done, duplicates + already
            os.remove(claimed)
        return written, duplicates

    @staticmethod
    def _decode(lines, path):
        records = []
        for line in lines:
            try:
                record = decode(line)
                record.pop(_SPOOLED_AT, None)
                records.append(record)
            except ValueError:
                log.error("spool file %s has an unreadable line (a process died writing it); skipped",
                          os.path.basename(path))
        return records


def _read_times(lines, times, modified):
    """Append to `times` when each of these whole lines was spooled; a line from before lines carried
    their time counts as spooled when its file was last appended to."""
    stamped = [float(found) for found in _STAMPED.findall(lines)]
    new = sorted(stamped + [modified] * (lines.count(b"\n") - len(stamped)))
    in_order = not times or not new or times[-1] <= new[0]
    times.extend(new)
    if not in_order:  # a clock stepped back, or lines from before they carried their time: bisect needs order
        times[:] = array.array("d", sorted(times))
