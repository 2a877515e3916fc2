"""The WSGI entry point for Gunicorn: gunicorn -c gunicorn.conf.py wsgi:app."""
import sys

from app import create_app
from config import ConfigError
from proxy.storage.migrations import SchemaError

try:
    app = create_app()
except ConfigError as exc:
    # Name the bad setting and stop, rather than serve with a guess.
    print(f"gemini-proxy: configuration error: {exc}", file=sys.stderr)
    sys.exit(4)
except SchemaError as exc:
    # Stop before taking requests whose every record the database would refuse.
    print(f"gemini-proxy: database error: {exc}", file=sys.stderr)
    sys.exit(4)
