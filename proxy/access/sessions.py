"""Live sessions open now, per client: counted for every worker of this host in a small SQLite file, or
for every instance in Redis when QUOTA_STORAGE_URL names one (the host's file standing in while it is down).

A worker's memory would let each worker open the limit again; the file is shared as the token-quota
ledger is, and a session whose worker died is forgotten as soon as another worker looks (its pid is gone).
In Redis a session lives while its process pushes its expiry on (sessions_redis)."""
import logging
import os
import threading
import time

from ..storage.database import local_path
from ..storage.host_files import SharedFile
from ..storage.spool import alive
from .sessions_redis import HEARTBEAT_SECONDS, RedisSessions

log = logging.getLogger(__name__)

_RETRY_SECONDS = 5.0  # while Redis is down, how often it is tried again: a dead host costs a timeout

_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_sessions (
    id TEXT PRIMARY KEY, client_id INTEGER, pid INTEGER NOT NULL, started REAL NOT NULL);
CREATE INDEX IF NOT EXISTS live_sessions_client ON live_sessions (client_id);
"""


class HostSessions:
    """Opens a session for a client when it has fewer than its limit open on this host, and closes it."""

    def __init__(self, path, clock=time.time):
        self.path, self.clock = path, clock
        self._file = SharedFile(path, _SCHEMA)

    def _transaction(self, work):
        return self._file.transaction(work)

    def open(self, session_id, client_id, limit):
        """Whether the session may open: the client has fewer than `limit` open (0: no limit)."""

        def work(connection):
            if limit:
                pids = {pid for (pid,) in connection.execute(
                    "SELECT DISTINCT pid FROM live_sessions WHERE client_id IS ?", (client_id,))}
                for pid in pids - {os.getpid()}:
                    if not alive(pid):
                        connection.execute("DELETE FROM live_sessions WHERE pid = ?", (pid,))
                (count,) = connection.execute("SELECT count(*) FROM live_sessions WHERE client_id IS ?",
                                              (client_id,)).fetchone()
                if count >= limit:
                    return False
            connection.execute("INSERT INTO live_sessions (id, client_id, pid, started) VALUES (?, ?, ?, ?)",
                               (session_id, client_id, os.getpid(), self.clock()))
            return True

        return self._transaction(work)

    def close(self, session_id, client_id=None):
        self._transaction(lambda connection: connection.execute("DELETE FROM live_sessions WHERE id = ?",
                                                                (session_id,)))

    def count(self, client_id):
        return self._transaction(lambda connection: connection.execute(
            "SELECT count(*) FROM live_sessions WHERE client_id IS ?", (client_id,)).fetchone()[0])


class LiveSessions:
    """The sessions of this worker's clients: in Redis when one is configured and answers, else in the
    host's file. A session is closed where it was opened."""

    def __init__(self, host, shared=None, clock=time.monotonic, heartbeat=HEARTBEAT_SECONDS):
        self.host, self.shared, self.clock, self.heartbeat = host, shared, clock, heartbeat
        self._mine = {}  # session id -> (its client, the store that counts it)
        self._lock = threading.Lock()  # a close never races a heartbeat that would count it again
        self._failed_at = None  # clock time of Redis's last failure; it is tried again _RETRY_SECONDS after
        self._down = False
        self._beating = None  # (pid, thread): the heartbeat is this process's, made again after a fork

    @classmethod
    def from_app(cls, app):
        host = HostSessions(local_path(app, "live-sessions"))
        url = app.config["QUOTA_STORAGE_URL"]
        return cls(host, RedisSessions(url) if url else None)

    def open(self, session_id, client_id, limit):
        """Whether the session may open: the client has fewer than `limit` open (0: no limit)."""
        store = self.shared if self._use_shared() else self.host
        try:
            opened = store.open(session_id, client_id, limit)
        except self._errors():
            self._failed("opening a session")
            store = self.host
            opened = store.open(session_id, client_id, limit)
        else:
            if store is self.shared:
                self._answered()
        if opened:
            with self._lock:
                self._mine[session_id] = (client_id, store)
            if store is self.shared:
                self._start_heartbeat()
        return opened

    def close(self, session_id):
        with self._lock:
            client_id, store = self._mine.pop(session_id, (None, self.host))
            try:
                store.close(session_id, client_id)
            except self._errors():
                self._failed("closing a session")  # its entry expires with no heartbeat to push it on

    def count(self, client_id):
        """Sessions the client holds open, where this worker counts them now."""
        if self._use_shared():
            try:
                return self.shared.count(client_id)
            except self._errors():
                self._failed("counting sessions")
        return self.host.count(client_id)

    def sharing(self):
        """Who shares the count: "instances" (Redis), or "host" (the file beside the database: no Redis,
        or Redis is not answering), and whether the configured store answers."""
        if self.shared is None:
            return {"shared_by": "host", "reachable": True}
        return {"shared_by": "host" if self._down else "instances", "reachable": not self._down}

    def beat(self):
        """One heartbeat: the expiry of this process's sessions in Redis pushed on."""
        with self._lock:
            mine = {sid: client for sid, (client, store) in self._mine.items() if store is self.shared}
            if not mine or self._holding_off():
                return
            try:
                self.shared.refresh(mine)
            except self._errors():
                self._failed("refreshing sessions")
            else:
                self._answered()

    def _errors(self):
        return self.shared.errors if self.shared is not None else ()

    def _use_shared(self):
        return self.shared is not None and not self._holding_off()

    def _holding_off(self):
        return self._failed_at is not None and 0 <= self.clock() - self._failed_at < _RETRY_SECONDS

    def _failed(self, what):
        self._failed_at = self.clock()
        if not self._down:  # once per outage, not once per session
            self._down = True
            log.warning("Live session storage (Redis) unreachable (%s): the Live session limit counts this "
                        "host's sessions only until it answers", what, exc_info=True)

    def _answered(self):
        self._failed_at = None
        if self._down:
            self._down = False
            log.warning("Live session storage (Redis) answers again: the Live session limit holds for every "
                        "instance")

    def _start_heartbeat(self):
        with self._lock:
            if self._beating is not None and self._beating[0] == os.getpid() and self._beating[1].is_alive():
                return
            thread = threading.Thread(target=self._beat_forever, name="live-sessions-heartbeat", daemon=True)
            self._beating = (os.getpid(), thread)
        thread.start()

    def _beat_forever(self):
        while True:
            time.sleep(self.heartbeat)
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - the heartbeat must outlive one bad beat, or sessions expire
                log.exception("Live sessions heartbeat failed; the next one will try again")
