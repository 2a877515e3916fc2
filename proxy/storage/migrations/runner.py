"""A database brought to this version's newest migration, on a connection that holds the migration lock
(lock.py); and Flask-Migrate bound to the app. Imported only when there is work for Alembic."""
import logging

from alembic import command
from alembic.script import ScriptDirectory
from flask_migrate import Migrate
from sqlalchemy import inspect

from models import db

from . import DIRECTORY, SchemaError, baseline, legacy, up_to_date, version_of

log = logging.getLogger(__name__)

BASELINE = "0001"  # the revision of baseline.py's tables


def extension(app):
    """Flask-Migrate's state on `app`, bound the first time it is needed."""
    if "migrate" not in app.extensions:
        Migrate(app, db, directory=DIRECTORY)
    return app.extensions["migrate"]


def commands(app):
    """Flask-Migrate's `flask db` group, for `app`."""
    extension(app)
    return app.cli.commands["db"]


def upgrade(app, connection, metadata):
    """Bring the database to the newest migration; then make any of `metadata`'s (the models') tables
    it still lacks (dropped by hand: the models are the newest migration's tables, `flask db check`
    holds them so). Returns what was done, for the log."""
    config = extension(app).migrate.get_config()
    config.attributes["connection"] = connection  # env.py runs on it, inside the lock
    head = ScriptDirectory.from_config(config).get_current_head()
    if up_to_date(connection, metadata, head):
        return []
    done = _migrate(connection, config, head, metadata)
    for line in done:
        log.warning("database upgraded for this version: %s", line)
    return done


def _migrate(connection, config, head, metadata):
    tables = set(inspect(connection).get_table_names())
    version = version_of(connection, tables)
    if not tables:  # a new database: the migrations make it, and that needs no warning
        command.upgrade(config, "head")
        log.info("database made at migration %s", head)
        return []
    done = []
    if version is None and tables & set(baseline.metadata.tables):
        # Made before migrations: brought to the baseline by adding what it lacks, then marked as there.
        done = legacy.bring_to(connection, baseline.metadata)
        command.stamp(config, BASELINE)
        done.append(f"stamped migration {BASELINE} on a database made before migrations")
        version = BASELINE
    elif version is not None and not _known(config, version):
        raise SchemaError(f"the database is at migration {version}, which this version does not know (a newer "
                          "version's?); see README, The database's schema, and upgrading")
    if version != head:
        command.upgrade(config, "head")
        done.append(f"migrated from {version or 'no migration'} to {head}")
    inspector = inspect(connection)
    missing = [table for table in metadata.sorted_tables if not inspector.has_table(table.name)]
    if missing:
        metadata.create_all(connection, tables=missing)
        done.append(f"made missing table(s) {', '.join(table.name for table in missing)}")
    return done


def _known(config, version):
    return any(script.revision == version for script in ScriptDirectory.from_config(config).walk_revisions())
