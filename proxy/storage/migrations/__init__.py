"""Schema changes as Alembic migrations, through Flask-Migrate; this folder is its migrations directory.

`flask --app wsgi db upgrade` applies them, and so does every start (runner.py, under a lock).
A change to models.py comes with a migration: `flask --app wsgi db migrate -m "..."`, then review it;
`flask db check` (a test) fails while the two differ."""
import os

from flask_migrate import Migrate

DIRECTORY = os.path.dirname(os.path.abspath(__file__))

migrate = Migrate(directory=DIRECTORY)


class SchemaError(RuntimeError):
    """The database cannot be brought up to this version's tables: the start stops, naming why."""
