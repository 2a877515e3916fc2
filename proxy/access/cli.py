"""flask keys ...: issue, list, revoke, rotate and restore client keys from the command line."""
import click
from flask import Blueprint, current_app

from config import valid_rate_limit
from models import INTEGER_MAX

from . import clients

cli = Blueprint("keys", __name__, cli_group="keys")


def _state(client):
    when = client.revoked_at if client.state == "revoked" else client.rotated_at
    state = client.state + (f" {when:%Y-%m-%d %H:%M}" if when else "")
    if client.from_api_keys and client.env_key_refused:
        state += ", its API_KEYS key refused until restored"
    return state


def _show(client):
    source = "API_KEYS" if client.from_api_keys else client.source
    return (f"{client.id:>4}  {client.name:<24} {client.key_prefix}…  {source:<8} {_state(client):<24} "
            f"limit={client.rate_limit or '-'} quota={client.daily_token_quota if client.daily_token_quota is not None else '-'}")


@cli.cli.command("create")
@click.argument("name")
@click.option("--rate-limit", help="Override of RATE_LIMIT, e.g. 10/minute;1000/day")
@click.option("--token-quota", type=click.IntRange(min=0, max=INTEGER_MAX),
              help="Tokens a day (UTC); 0 for unlimited")
def create_command(name, rate_limit, token_quota):
    """Issue a key for NAME; the secret is printed once."""
    if rate_limit and not valid_rate_limit(rate_limit):
        raise click.BadParameter(f"{rate_limit!r} is not a limit such as 10/minute;1000/day")
    client, secret = clients.create(name, rate_limit, token_quota)
    click.echo(f"Created client {client.id} ({client.name}). Its key, shown only now:\n{secret}")


@cli.cli.command("list")
def list_command():
    """List every client key (never the secrets)."""
    for client in clients.all_clients():
        click.echo(_show(client))


@cli.cli.command("revoke")
@click.argument("client")
def revoke_command(client):
    """Revoke CLIENT (an id or a name); it stops working at once, and a key from API_KEYS stays refused
    across restarts until `keys restore`."""
    try:
        revoked = clients.revoke(client)
    except clients.ClientNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Revoked client {revoked.id} ({revoked.name}).")


@cli.cli.command("rotate")
@click.argument("client")
def rotate_command(client):
    """Give CLIENT (an id or a name) a new secret; the old one stops at once (a key from API_KEYS stays
    refused across restarts until `keys restore`)."""
    try:
        rotated, secret = clients.rotate(client)
    except clients.ClientNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Rotated client {rotated.id} ({rotated.name}). Its new key, shown only now:\n{secret}")


@cli.cli.command("restore")
@click.argument("client")
def restore_command(client):
    """Undo the revocation of CLIENT (an id or a name); a client from API_KEYS also gets its API_KEYS key
    back, and a secret it was rotated to stops at once."""
    try:
        restored = clients.restore(client, current_app.config["API_KEYS"])
    except (clients.ClientNotFound, clients.CannotRestore) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Restored client {restored.id} ({restored.name}): {_state(restored)}.")
