"""The requests a worker holds, noted in a file of its own in the spool folder, so that the survivors of a
worker that dies record the requests it took with it: once each, as aborted (WORKER_DIED).

A request is noted when it is admitted (one small append, not fsynced: the page cache outlives a killed
worker) and forgotten in memory when its response closes, after its record is spooled. The file only
grows, so the worker now and then rewrites it with what it still holds. A dead worker's file is claimed
by renaming it, as the spool's files are, so only one survivor replays it. Its notes go to the database
after the dead worker's spooled records, as records of their own; the database skips those whose final
record it holds already, and a final record that turns up later takes the aborted one's place."""
import glob
import logging
import os
import threading
import time
from datetime import datetime

from .spool import alive, decode, encode

log = logging.getLogger(__name__)

WORKER_DIED = "WORKER_DIED"
# The file is rewritten when it is this large and holds four times what is still in flight.
_COMPACT_BYTES = 256 * 1024


def _owner(path):
    """The pid in inflight-<pid>.jsonl or claimed-<ns>.<pid>.inflight."""
    name = os.path.basename(path)
    return int(name.rsplit(".", 2)[-2] if name.endswith(".inflight") else name[len("inflight-"):-len(".jsonl")])


class InFlight:
    def __init__(self, directory):
        self.directory = directory
        self._held = {}  # key: the note's line, for the requests this process holds now
        self._held_bytes = 0
        self._descriptor = self._pid = None  # the file open, and the process that opened it
        self._looked = None  # the process that looked for a file an earlier one left under its pid
        self._appended = 0  # bytes in the file since it was last rewritten
        self._lock = threading.Lock()  # the development server runs threads
        self._refused = False

    def _path(self, pid=None):
        return os.path.join(self.directory, f"inflight-{pid or os.getpid()}.jsonl")

    def _open(self):
        if self._pid != os.getpid():  # opened lazily, and again in a forked child
            path = self._path()
            if self._looked != os.getpid():
                self._looked = os.getpid()
                if os.path.exists(path):
                    # Left by an earlier process with this pid (a restarted container's worker): its notes
                    # are a dead process's, for replay, not this one's to rewrite.
                    os.rename(path, self._claimed_path())
            try:
                self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # the folder is gone (or was never made): make it, once
                os.makedirs(self.directory, exist_ok=True)
                self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._descriptor

    def _forget_descriptor(self):
        if self._pid == os.getpid():  # a forked child does not close its parent's
            os.close(self._descriptor)
        self._pid = None

    def _claimed_path(self):
        return os.path.join(self.directory, f"claimed-{time.time_ns()}.{os.getpid()}.inflight")

    def start(self, key, note):
        """Note a request admitted; never raises (a request is not refused for want of its note)."""
        line = encode(note)
        with self._lock:  # gevent's in a worker, where it is never contended
            try:
                os.write(self._open(), line)
            except OSError as exc:
                if not self._refused:
                    log.error("the spool's disk refuses in-flight notes (%s): a request a worker dies with "
                              "meanwhile is not recorded", exc)
                self._refused = True
                self._forget_descriptor()
                return
            self._refused = False
            self._held[key] = line
            size = len(line)
            self._held_bytes += size
            self._appended += size

    def end(self, key):
        """The request is over and its record spooled (or it has none)."""
        with self._lock:
            line = self._held.pop(key, None)
            if line is not None:
                self._held_bytes -= len(line)

    def compact(self):
        """Rewrite this process's file with only the requests it still holds, once it has grown."""
        with self._lock:
            if self._appended < max(_COMPACT_BYTES, 4 * self._held_bytes) or self._pid != os.getpid():
                return
            fresh = self._path() + ".new"
            try:
                with open(fresh, "wb") as handle:
                    handle.write(b"".join(self._held.values()))
                os.replace(fresh, self._path())
            except OSError:
                log.exception("the in-flight notes could not be rewritten; they are kept as they are")
                return
            self._forget_descriptor()  # the next note opens the new file
            self._appended = self._held_bytes

    def close(self):
        """At exit: a process that holds no request leaves no file; one that does leaves its notes to
        the survivors."""
        with self._lock:
            if self._pid != os.getpid():
                return
            self._forget_descriptor()
            if not self._held:
                try:
                    os.remove(self._path())
                except FileNotFoundError:
                    pass

    def replay_dead(self, write, per_write, aborted):
        """Hand the notes of dead processes to `write(records, tried=True)` as `aborted(note)`; returns
        (written, already there). Stops at the first batch `write` cannot take (it raises), keeping
        that file for the next run."""
        written = duplicates = 0
        for path in sorted(glob.glob(os.path.join(self.directory, "inflight-*.jsonl")) +
                           glob.glob(os.path.join(self.directory, "*.inflight"))):
            owner = _owner(path)
            if owner == os.getpid() and path.endswith(".jsonl") or owner != os.getpid() and alive(owner):
                continue  # a live process's requests are still going on
            claimed = self._claimed_path()
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another survivor took it
            with open(claimed, "rb") as handle:
                notes = []
                for line in handle.read().splitlines():
                    try:
                        notes.append(decode(line))
                    except ValueError:
                        continue  # the process died writing it: nothing of that request is known
            records = [aborted(note) for note in notes if isinstance(note, dict) and note.get("request_id")
                       and isinstance(note.get("started_at"), datetime)]
            lost = 0
            for start in range(0, len(records), per_write):
                done, already = write(records[start:start + per_write], tried=True)
                lost, duplicates = lost + done, duplicates + already
            os.remove(claimed)
            written += lost
            if lost:
                log.warning("a worker died holding %d request(s) it had not recorded (%s); they are recorded as %s",
                            lost, os.path.basename(path), WORKER_DIED)
        return written, duplicates
