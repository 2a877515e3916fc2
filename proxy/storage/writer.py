"""Write-behind for request records: a request appends its record to the spool and goes on; a background
loop in each worker writes what gathered in one transaction, and retries what the database refused."""
import atexit
import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from models import db

from .admitted import aborted
from .batch import insert_records
from .database import create_tables
from .inflight import InFlight
from .records import RequestRecord

log = logging.getLogger(__name__)

# Records kept in memory while the spool's disk refuses them too (full, read-only, gone), until it or
# the database takes them; beyond this many the oldest are kept and newer ones are lost, and say so.
HELD_MAX = 100_000
# How long a stopping process waits for the loop's write under way, before writing what is left itself.
_CLOSE_WAIT_SECONDS = 10.0
# Records per transaction. A transaction runs on the worker's loop, whose requests wait for it: a
# backlog of 3000 in one stalled them for 330 ms. Between transactions they go on, for a pause long
# enough that the loop looks for their sockets' events (sleep(0) would only run greenlets already woken).
_RECORDS_PER_TRANSACTION = 100
_TURN_SECONDS = 0.001


class RecordWriter:
    def __init__(self, app, spool, gather_seconds, retry_seconds):
        self.app = app
        self.spool = spool
        self.inflight = InFlight(spool.directory)  # the requests this worker holds, for its survivors
        self.gather_seconds = gather_seconds  # how long records gather before one transaction writes them
        self.retry_seconds = retry_seconds  # how often refused records, and dead workers' ones, are retried
        self.failing = False  # the database refused this worker's last write
        self.held = []  # records neither the spool nor the database would take yet
        # One write at a time in a process: a second would claim the file the first is replaying.
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self.clock = time.monotonic
        # Who watches records, registered by the app factory: storage knows nothing of them.
        self._finished_observers = []  # called with each request's record as soon as it is built
        self._written_observers = []  # called with the records a transaction writes, inside it

    def watch_finished(self, observer):
        """Call `observer(record)` with every request's record as it is finished (metrics, token quotas)."""
        self._finished_observers.append(observer)

    def watch_written(self, observer):
        """Call `observer(records)` inside each transaction that writes records (the rollups' bookkeeping)."""
        self._written_observers.append(observer)

    def finished(self, record):
        """A request's record is built: tell its observers (the record is submitted when the response closes)."""
        for observer in self._finished_observers:
            observer(record)

    def submit(self, record):
        """Keep the RequestRecord; never raises. Without the background loop (tests, CLI), write it now."""
        try:
            self.spool.append(record.to_spooled(), keep=record)  # kept: the writer need not read it back
        except OSError as exc:
            self._hold(record, exc)
            return
        if self.failing:
            return  # the retry loop writes it, with the records already waiting
        if self._thread is not None:
            if not self._wake.is_set():  # setting it again would take its lock only to wake no one
                self._wake.set()
        else:
            self.flush()

    def _hold(self, record, exc):
        if len(self.held) >= HELD_MAX:
            log.error("FAILED TO RECORD request %s: the spool's disk refuses records (%s) and %d are held in "
                      "memory already", record.request_id, exc, len(self.held))
            return
        if not self.held:
            log.error("the spool's disk refuses records (%s); holding them in memory until it or the "
                      "database takes them", exc)
        self.held.append(record)

    def _release_held(self):
        """Held records to the database, or else back to the spool, whichever takes them first."""
        with self._writing:
            held, self.held = self.held, []
            with self.app.app_context():
                try:
                    for start in range(0, len(held), _RECORDS_PER_TRANSACTION):
                        self._insert_turn(held[start:start + _RECORDS_PER_TRANSACTION], tried=True)
                    log.info("wrote %d record(s) held in memory into the database", len(held))
                    return
                except (SQLAlchemyError, OSError):  # OSError: the disk refused a rejected record's file too
                    db.session.rollback()
            # Some may be written already; the spool's duplicate check skips them later.
            for position, record in enumerate(held):
                try:
                    self.spool.append(record.to_spooled(), keep=record)
                except OSError:
                    self.held = held[position:] + self.held
                    return

    def flush(self):
        """Write this worker's own waiting records."""
        return self._write(own_only=True)

    def replay(self):
        """Write every record this worker may take, dead workers' and those held in memory included; a
        message for the log."""
        if self.held:
            self._release_held()
        written, duplicates = self._write(own_only=False)
        if written or duplicates:
            return f"replayed {written} spooled record(s) into the database ({duplicates} were already there)"
        return None

    def _write(self, own_only):
        with self._writing, self.app.app_context():
            try:
                if self.failing:
                    create_tables()  # a database file that was deleted comes back empty
                written, duplicates = self.spool.replay(self._insert_spooled, _RECORDS_PER_TRANSACTION,
                                                      own_only=own_only)
                if not own_only:
                    # After the dead workers' spooled records, so that those they did record are found.
                    lost, noted = self.inflight.replay_dead(self._insert_turn, _RECORDS_PER_TRANSACTION, aborted)
                    written, duplicates = written + lost, duplicates + noted
            except SQLAlchemyError as exc:
                db.session.rollback()
                if not self.failing:
                    log.warning("the database refused records (%s); they wait in the spool",
                                str(getattr(exc, "orig", None) or exc).splitlines()[0])
                self.failing = True
                return 0, 0
        if self.failing:
            log.info("the database takes records again")
        self.failing = False
        return written, duplicates

    def _insert_turn(self, records, tried):
        """One transaction of insert_records, after a pause in which the requests ready on the loop run:
        a transaction holds up the worker's every request while it runs."""
        time.sleep(_TURN_SECONDS)  # gevent's sleep, in a worker
        return insert_records(records, tried=tried, reject=self._reject, written=self._written_observers)

    def _insert_spooled(self, mappings, tried):
        """_insert_turn for the spool's mappings (or the records it kept); one that is no record is kept apart
        as the database's refusals are."""
        records = []
        for mapping in mappings:
            if isinstance(mapping, RequestRecord):  # kept by the spool as it was submitted
                records.append(mapping)
                continue
            try:
                records.append(RequestRecord.from_spooled(mapping))
            except (TypeError, AttributeError) as exc:
                self.spool.reject(mapping, f"{type(exc).__name__}: {exc}")
        return self._insert_turn(records, tried) if records else (0, 0)

    def _reject(self, record, reason):
        self.spool.reject(record.to_spooled(), reason)

    def status(self):
        """Records the database has not taken yet: waiting in the spool (every worker's), those of them
        waiting longer than two replay intervals (a healthy worker writes its own within moments; a
        batch may gather for RECORD_GATHER_SECONDS first), how long the oldest has waited, refused as
        invalid and kept apart, and held in this worker's memory."""
        depth, stuck, oldest = self.spool.waiting(2 * self.retry_seconds + self.gather_seconds)
        return {"depth": depth, "stuck": stuck, "oldest_seconds": oldest, "rejected": self.spool.rejected(),
                "held_in_memory": len(self.held)}

    def start(self):
        """Run the write-behind loop in the background, and write what is left when the process exits."""
        self._thread = threading.Thread(target=self._loop, name="record-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _loop(self):
        replayed_at = self.clock()
        while not self._stop.is_set():
            woken = self._wake.wait(self.retry_seconds)
            if self._stop.is_set():
                break
            try:
                # Under steady traffic the loop is always woken: retry refused records and take over dead
                # workers' files on the clock all the same.
                if self.failing or self.held or self.clock() - replayed_at >= self.retry_seconds:
                    self._wake.clear()
                    replayed_at = self.clock()
                    message = self.replay()
                    if message:
                        log.info("spool: %s", message)
                elif woken:
                    self._stop.wait(self.gather_seconds)  # let a batch gather
                    self._wake.clear()
                    self.flush()
                self.inflight.compact()
            except Exception:
                log.exception("the record writer failed; it will try again")

    def close(self):
        """Stop the loop and write this worker's waiting records (at exit: after the last response)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=_CLOSE_WAIT_SECONDS)  # a write under way finishes first
        if self.held:
            self._release_held()
        self.flush()
        self.inflight.close()
        if self.held:
            log.error("FAILED TO RECORD %d request(s): neither the spool's disk nor the database took them "
                      "before the worker exited", len(self.held))
