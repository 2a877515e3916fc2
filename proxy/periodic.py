"""Background jobs a worker runs on an interval: retention, rollups, the spool's replay."""
import logging
import threading

from models import db

log = logging.getLogger(__name__)


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
