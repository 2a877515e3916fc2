"""flask keys ...: issue, list, revoke and rotate client keys from the command line."""
import click
from flask import Blueprint

from config import valid_rate_limit
from models import INTEGER_MAX

from . import clients

cli = Blueprint("keys", __name__, cli_group="keys")


def _show(client):
    state = "active" if client.active else f"revoked {client.revoked_at:%Y-%m-%d %H:%M}"
    return (f"{client.id:>4}  {client.name:<24} {client.key_prefix}…  {client.source:<5} {state:<24} "
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
    """Revoke CLIENT (an id or a name); it stops working at once."""
    try:
        revoked = clients.revoke(client)
    except clients.ClientNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Revoked client {revoked.id} ({revoked.name}).")


@cli.cli.command("rotate")
@click.argument("client")
def rotate_command(client):
    """Give CLIENT (an id or a name) a new secret; the old one stops at once."""
    try:
        rotated, secret = clients.rotate(client)
    except clients.ClientNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Rotated client {rotated.id} ({rotated.name}). Its new key, shown only now:\n{secret}")
