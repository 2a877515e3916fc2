"""SQLite in a gevent worker, taking turns with the worker's other requests: SQLite works in C on the
loop's own thread, so a wait for its write lock or a long read held up every request the worker had."""
import sqlite3
import sys
import time


def serving_on_gevent():
    """True in a Gunicorn gevent worker, where SQLite's work (C code, on the loop's own thread) holds up
    every request the worker has until it ends."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


# SQLite VM instructions between calls of a progress handler (some tens of microseconds of work), and
# how long a read runs before the worker's other requests get a turn (seconds).
PROGRESS_STEPS = 10_000
_READ_TURN_SECONDS = 0.005


def let_requests_in(dbapi_connection, clock=time.monotonic):
    """A progress handler for a gevent worker's connections: a long read (a 30-day report over raw
    rows: a second) lets the worker's other requests run every few milliseconds, as a networked
    database's driver would. Never inside a write transaction: switched out there, it would keep the
    write lock from this worker's other writers meanwhile."""
    from gevent import get_hub, getcurrent, idle

    turn_ends = [clock() + _READ_TURN_SECONDS]

    def progress():
        if clock() >= turn_ends[0] and not dbapi_connection.in_transaction:
            # The loop's own greenlet may not wait (a callback of the loop's); an exception raised here
            # would interrupt the statement.
            if getcurrent() is not get_hub():
                idle()  # the loop polls the sockets and runs every greenlet that is ready, then comes back
            turn_ends[0] = clock() + _READ_TURN_SECONDS
        return 0  # go on: non-zero would interrupt the statement

    return progress


# The statements before which Python's sqlite3 opens a transaction of its own (a deferred one).
_WRITES = ("insert", "update", "delete", "replace")
# The execution option by which a write that need not happen now waits less than the busy timeout.
WRITE_LOCK_PATIENCE = "write_lock_patience"
# Between tries for the write lock: from the first to the longest, doubling (seconds).
_FIRST_TRY_GAP, _LONGEST_TRY_GAP = 0.001, 0.025


def take_write_lock_politely(busy_timeout, sleep=time.sleep, clock=time.monotonic):
    """A before_cursor_execute hook: open each write transaction with the write lock already taken.

    SQLite's own busy handler waits for the lock inside C, and a gevent worker's every request waits
    with it: another process holding the database for seconds froze all of them for seconds. Here the
    lock is tried without waiting, and between tries `sleep` (gevent's, in a worker) lets the other
    requests run. The patience is the same busy timeout. With the lock held from BEGIN, the
    transaction's statements and its COMMIT need not wait in WAL mode."""
    busy_timeout_ms = int(busy_timeout * 1000)

    def before_cursor_execute(_connection, cursor, statement, _parameters, context, _executemany):
        dbapi_connection = cursor.connection
        if dbapi_connection.in_transaction or not statement.lstrip()[:7].lower().startswith(_WRITES):
            return
        # A statement may ask to wait less (execution option WRITE_LOCK_PATIENCE, seconds).
        options = context.execution_options if context is not None else {}
        deadline = clock() + options.get(WRITE_LOCK_PATIENCE, busy_timeout)
        gap = _FIRST_TRY_GAP
        dbapi_connection.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    dbapi_connection.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or clock() + gap > deadline:
                        raise
                sleep(gap)
                gap = min(gap * 2, _LONGEST_TRY_GAP)
        finally:
            dbapi_connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")

    return before_cursor_execute
