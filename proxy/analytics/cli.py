"""flask ops ...: synthetic history, exports, retention and backups."""
import time

import click
from flask import Blueprint

from models import db

from . import synthetic

cli = Blueprint("ops", __name__, cli_group="ops")


@cli.cli.command("seed")
@click.option("--rows", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--days", type=click.IntRange(min=1, max=400), default=30, show_default=True)
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Random seed")
def seed_command(rows, days, seed_value):
    """Fill the database with realistic synthetic request history (for benchmarks)."""
    started = time.perf_counter()
    inserted = synthetic.seed(rows, days, seed_value,
                              progress=lambda n: click.echo(f"  {n:,} rows", err=True) if n % 200_000 == 0 else None)
    click.echo(f"Inserted {inserted:,} requests over {days} days in {time.perf_counter() - started:.1f} s.")
