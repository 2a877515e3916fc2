"""Schema changes as Alembic migrations, through Flask-Migrate; this folder is its migrations directory.

`flask --app wsgi db upgrade` applies them, and so does every start (runner.py, under a lock). A change
to models.py comes with a migration (`flask --app wsgi db migrate -m "..."`, then read it) and HEAD
moves to it; `flask db check` (a test) fails while the models and the migrations differ.

Alembic takes a process 0.4 s to import, and every worker, CLI command and maintenance run starts on a
database already at HEAD: that is seen here in two queries, and Alembic is imported only for work."""
import os

import click
from flask import g
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy import inspect, text

from .lock import locked_connection

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
HEAD = "0007"  # the newest revision in versions/ (a test holds the two together)
VERSION_TABLE = "alembic_version"


class SchemaError(RuntimeError):
    """The database cannot be brought up to this version's tables: the start stops, naming why."""


def version_of(connection, tables):
    """The revision the database is at; None for one made before migrations, or empty."""
    if VERSION_TABLE not in tables:
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def up_to_date(connection, metadata, head=HEAD):
    """At the newest migration, with every table of `metadata` there (one may have been dropped by hand)."""
    tables = set(inspect(connection).get_table_names())
    return version_of(connection, tables) == head and set(metadata.tables) <= tables


def upgrade(app, engine, metadata):
    """Bring the database to the newest migration, under the migration lock; `metadata` is the models'.
    Returns what was done to an existing database, for the log."""
    with engine.connect() as connection:
        if up_to_date(connection, metadata):
            return []
    with locked_connection(engine) as connection:
        if up_to_date(connection, metadata):
            return []  # another process did it while this one waited
        from .runner import upgrade as migrate  # Alembic, imported only when there is work for it

        return migrate(app, connection, metadata)


class _LoadedOnUse(click.Group):
    """A group whose commands are Flask-Migrate's, loaded (with Alembic) only when one of them runs."""

    def _loaded(self, ctx):
        from .runner import commands

        return commands(ctx.ensure_object(ScriptInfo).load_app())

    def list_commands(self, ctx):
        return self._loaded(ctx).list_commands(ctx)

    def get_command(self, ctx, name):
        return self._loaded(ctx).get_command(ctx, name)


# Flask-Migrate's own `db` group, declared again here so that loading it can wait.
@click.group("db", cls=_LoadedOnUse)
@click.option("-d", "--directory", default=None, help="Migration script directory (default: this folder)")
@click.option("-x", "--x-arg", multiple=True, help="Additional arguments consumed by custom env.py scripts")
@with_appcontext
def db_commands(directory, x_arg):
    """Perform database migrations."""
    g.directory = directory
    g.x_arg = x_arg  # read by Flask-Migrate's get_config
