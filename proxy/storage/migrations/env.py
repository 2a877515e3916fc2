"""Alembic's environment for `flask db ...` and the start-up upgrade: the app's database and models.

Every online run holds the migration lock (lock.py), whoever starts it: the start
passes its own locked connection in `config.attributes`; a `flask db` command takes one here."""
import logging

from alembic import context
from flask import current_app

from proxy.storage.migrations.lock import locked_connection

config = context.config
migrate = current_app.extensions["migrate"]
log = logging.getLogger("alembic.env")


def skip_empty_revisions(_context, _revision, directives):
    """`flask db migrate` with nothing changed writes no empty revision file."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def run_on(connection):
    options = dict(migrate.configure_args)
    options.setdefault("process_revision_directives", skip_empty_revisions)
    options["transactional_ddl"] = True  # the lock's transaction holds every statement, on SQLite too
    context.configure(connection=connection, target_metadata=migrate.db.metadata, **options)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # `flask db upgrade --sql`: print the SQL instead
    context.configure(url=migrate.db.engine.url, target_metadata=migrate.db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_on(config.attributes["connection"])
else:
    with locked_connection(migrate.db.engine) as connection:
        run_on(connection)
