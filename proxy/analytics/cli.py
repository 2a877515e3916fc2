"""flask ops ...: synthetic history, exports, retention and backups."""
import time

import click
from flask import Blueprint

from models import db

from . import rollups, synthetic

cli = Blueprint("ops", __name__, cli_group="ops")


@cli.cli.command("seed")
@click.option("--rows", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--days", type=click.IntRange(min=1, max=400), default=30, show_default=True)
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Random seed")
@click.option("--trend", type=click.FloatRange(min=-0.5, max=0.5), default=0.0, show_default=True,
              help="Daily growth of traffic, as a share of the last day's (0.02: 2% a day)")
@click.option("--weekly", is_flag=True, help="Busy working days and quiet weekends")
@click.option("--clients", type=click.IntRange(min=0, max=100), default=0, show_default=True,
              help="Share the traffic among this many clients, synthetic-1 the busiest")
def seed_command(rows, days, seed_value, trend, weekly, clients):
    """Fill the database with realistic synthetic request history (for benchmarks; with --trend, --weekly
    and --clients, a known pattern to check /analytics/forecast against)."""
    started = time.perf_counter()
    inserted = synthetic.seed(rows, days, seed_value,
                              progress=lambda n: click.echo(f"  {n:,} rows", err=True) if n % 200_000 == 0 else None,
                              trend=trend, weekly=weekly, clients=clients)
    click.echo(f"Inserted {inserted:,} requests over {days} days in {time.perf_counter() - started:.1f} s.")
    started = time.perf_counter()
    hours = rollups.roll_up()
    click.echo(f"Rolled up {hours:,} settled hours in {time.perf_counter() - started:.1f} s.")


@cli.cli.command("rollup")
@click.option("--rebuild", is_flag=True, help="Drop every rollup first and build them all again")
def rollup_command(rebuild):
    """Roll settled hours of the request log up into hourly aggregates (the server does this by itself
    every ROLLUP_INTERVAL_SECONDS)."""
    if rebuild:
        rollups.forget()
        db.session.commit()
    started = time.perf_counter()
    hours = rollups.roll_up()
    click.echo(f"Rolled up {hours:,} hours in {time.perf_counter() - started:.1f} s.")


def _window(since, until, model):
    from ..analytics.window import parse_window

    args = {k: v for k, v in (("from", since), ("to", until), ("model", model)) if v}
    try:
        return parse_window(args)
    except Exception as exc:  # InvalidRequest: the message names the bad option
        raise click.BadParameter(str(exc)) from None


_WINDOW_OPTIONS = [
    click.option("--from", "since", help="Start, ISO 8601 (default: 24 hours before --to)"),
    click.option("--to", "until", help="End, ISO 8601 (default: now)"),
    click.option("--model", help="Only this model"),
    click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="File (default: stdout)"),
]


def _window_options(func):
    for option in reversed(_WINDOW_OPTIONS):
        func = option(func)
    return func


@cli.cli.command("export-csv")
@_window_options
def export_csv_command(since, until, model, output):
    """Export the request log's metrics as CSV."""
    from .operations import export_csv

    count = export_csv(output, _window(since, until, model))
    click.echo(f"Exported {count} requests.", err=True)


@cli.cli.command("export-jsonl")
@_window_options
def export_jsonl_command(since, until, model, output):
    """Export logged exchanges as JSONL prompt and response pairs, ready for fine-tuning."""
    from .operations import export_jsonl

    count = export_jsonl(output, _window(since, until, model))
    click.echo(f"Exported {count} examples.", err=True)


@cli.cli.command("prune")
@click.option("--days", type=click.IntRange(min=0), help="Keep requests and metrics this many days (default: "
                                                          "RETENTION_DAYS; 0 keeps them)")
@click.option("--body-days", type=click.IntRange(min=0), help="Keep bodies this many days (default: "
                                                               "BODY_RETENTION_DAYS; 0 keeps them)")
def prune_command(days, body_days):
    """Delete data older than the retention periods."""
    from flask import current_app

    from .operations import prune

    config = current_app.config
    removed = prune(config["RETENTION_DAYS"] if days is None else days,
                    config["BODY_RETENTION_DAYS"] if body_days is None else body_days)
    click.echo(f"Removed {removed['requests']} requests, {removed['metrics']} metrics rows and "
               f"{removed['bodies']} bodies.")


@cli.cli.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, writable=True))
def backup_command(target):
    """Copy the live SQLite database to TARGET, consistently, while the server keeps writing."""
    from .operations import backup_sqlite

    engine = db.engine
    if engine.dialect.name != "sqlite" or not engine.url.database:
        raise click.ClickException("backup copies a SQLite file; use the database server's own tools")
    started = time.perf_counter()
    backup_sqlite(engine.url.database, target)
    click.echo(f"Backed up {engine.url.database} to {target} in {time.perf_counter() - started:.1f} s "
               "(integrity check ok).")
