"""Background jobs a worker runs on an interval: retention, rollups, the spool's replay; the heavy ones
in a process of their own when the worker serves requests on a gevent loop. Those that must run once
per deployment pass two gates: the host's flock (so a host's workers do not all ask the database), then
the deployment's lock in the database (storage.deployment_lock)."""
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
from contextlib import contextmanager

from models import db

from .storage.database import local_path
from .storage.deployment_lock import deployment_lock

log = logging.getLogger(__name__)

# The job process reads the worker's settings from here: in its environment, not on its command line,
# where `ps` would show a database password.
SETTINGS_VARIABLE = "PROXY_MAINTENANCE_SETTINGS"
_JOB_SETTINGS = ("SQLALCHEMY_DATABASE_URI", "SQLITE_BUSY_TIMEOUT_SECONDS", "LOG_LEVEL", "RETENTION_DAYS",
                 "BODY_RETENTION_DAYS")


def run_every(app, name, interval, job, stop=None):
    """Call `job(stop)` in an app context every `interval` seconds until `stop` is set. A failed run is
    logged and the next one tries again; what `job` returns, when truthy, is logged as its result."""
    stop = stop or threading.Event()

    def loop():
        while not stop.wait(interval):
            with app.app_context():
                try:
                    result = job(stop)
                    if result:
                        log.info("%s: %s", name, result)
                except Exception:
                    db.session.rollback()
                    log.exception("%s run failed; the next one will try again", name)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


@contextmanager
def one_per_host(app, name):
    """True inside when this worker holds the host's lock `name` (beside the database), False when another
    worker of the host holds it: that one does the job this round."""
    with open(local_path(app, name), "ab") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


@contextmanager
def one_per_deployment(app, name):
    """True inside when this worker holds both the host's lock `<name>.lock` and the deployment's lock
    `name`; False when another worker, of this host or any instance on the same database, holds one."""
    with one_per_host(app, f"{name}.lock") as mine:
        if not mine:
            yield False
            return
        with deployment_lock(db.engine, name) as held:
            yield held


def run_apart(app, job):
    """Run `python -m proxy.maintenance <job>` with this worker's settings and wait for it; the loop
    serves requests meanwhile (gevent's subprocess). One such process at a time per host: while another
    worker's runs, this round is skipped. The process takes the deployment's lock itself (so it stays
    held while the process runs, even if this worker dies) and logs its own result."""
    with open(local_path(app, "maintenance.lock"), "ab") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        settings = json.dumps({name: app.config[name] for name in _JOB_SETTINGS})
        # The worker's working directory is kept (a relative SQLite path means the same file); the
        # project's folder goes on the import path instead.
        path = os.pathsep.join(filter(None, [app.root_path, os.environ.get("PYTHONPATH")]))
        # The process keeps the lock open too: if this worker exits first, no other starts a second.
        done = subprocess.run([sys.executable, "-m", "proxy.maintenance", job], pass_fds=(lock.fileno(),),
                              env={**os.environ, "PYTHONPATH": path, SETTINGS_VARIABLE: settings})
    if done.returncode:
        raise RuntimeError(f"the {job} process exited with status {done.returncode}")
    return None
