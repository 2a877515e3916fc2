"""`python -m proxy.maintenance rollup|retention`: one run of a heavy periodic job, in a process of its
own, started by a worker (proxy.periodic.run_apart) with the worker's settings, once per deployment."""
import json
import logging
import os
import sys

from flask import Flask

from .logsetup import configure_logging
from .periodic import SETTINGS_VARIABLE
from models import db

from .storage.database import init_database
from .storage.deployment_lock import deployment_lock

log = logging.getLogger("proxy.maintenance")


def _rollup(_settings):
    from .analytics.rollups import roll_up_once

    return roll_up_once()


def _retention(settings):
    from .analytics.operations import prune_once

    return prune_once(settings["RETENTION_DAYS"], settings["BODY_RETENTION_DAYS"])


JOBS = {"rollup": _rollup, "retention": _retention}


def main(argv):
    if len(argv) != 2 or argv[1] not in JOBS or SETTINGS_VARIABLE not in os.environ:
        sys.exit(f"usage: {SETTINGS_VARIABLE}=<a worker's settings> python -m proxy.maintenance "
                 f"{'|'.join(JOBS)}  (a worker starts this itself)")
    settings = json.loads(os.environ.pop(SETTINGS_VARIABLE))
    configure_logging(settings["LOG_LEVEL"], [])
    app = Flask("proxy-maintenance")
    app.config.update(settings)
    init_database(app)
    with app.app_context():
        # The worker's host lock let one process per host here; this lets one per deployment run the job.
        with deployment_lock(db.engine, argv[1]) as mine:
            if not mine:
                log.debug("%s: another instance runs it this round", argv[1])
                return
            result = JOBS[argv[1]](settings)
    if result:
        log.info("%s: %s", argv[1], result)


if __name__ == "__main__":
    main(sys.argv)
