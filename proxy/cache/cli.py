"""flask cache clear: empty the response cache."""
import click
from flask import Blueprint, current_app

cli = Blueprint("cache", __name__, cli_group="cache")


@cli.cli.command("clear")
def clear_command():
    """Remove every cached answer."""
    removed = current_app.extensions["cache"].store.clear()
    click.echo(f"Removed {removed} cached answers.")
