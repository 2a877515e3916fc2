"""Live sessions open now, per client, counted for every worker of this host in a small SQLite file.

A worker's memory would let each worker open the limit again; the file is shared as the token-quota
ledger is, and a session whose worker died is forgotten as soon as another worker looks (its pid is gone)."""
import os
import time

from ..storage.host_files import SharedFile
from ..storage.spool import alive

_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_sessions (
    id TEXT PRIMARY KEY, client_id INTEGER, pid INTEGER NOT NULL, started REAL NOT NULL);
CREATE INDEX IF NOT EXISTS live_sessions_client ON live_sessions (client_id);
"""


class LiveSessions:
    """Opens a session for a client when it has fewer than its limit open, and closes it."""

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

    def close(self, session_id):
        self._transaction(lambda connection: connection.execute("DELETE FROM live_sessions WHERE id = ?",
                                                                (session_id,)))

    def count(self, client_id):
        return self._transaction(lambda connection: connection.execute(
            "SELECT count(*) FROM live_sessions WHERE client_id IS ?", (client_id,)).fetchone()[0])
