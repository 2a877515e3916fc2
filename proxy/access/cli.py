"""flask keys ...: issue, list, revoke, rotate and restore client keys from the command line."""
import click
from flask import Blueprint, current_app

from config import valid_rate_limit
from models import INTEGER_MAX

from . import clients, terms

cli = Blueprint("keys", __name__, cli_group="keys")


def _state(client):
    when = client.revoked_at if client.state == "revoked" else client.rotated_at
    state = client.state + (f" {when:%Y-%m-%d %H:%M}" if when else "")
    if client.from_api_keys and client.env_key_refused:
        state += ", its API_KEYS key refused until restored"
    return state


def _show(client):
    source = "API_KEYS" if client.from_api_keys else client.source
    budget = f"{client.budget_usd:g}/{client.budget_period}" if client.budget_usd is not None else "-"
    expires = f"{client.expires_at:%Y-%m-%dT%H:%M}Z" if client.expires_at else "-"
    return (f"{client.id:>4}  {client.name:<24} {client.key_prefix}…  {source:<8} {_state(client):<24} "
            f"limit={client.rate_limit or '-'} quota={client.daily_token_quota if client.daily_token_quota is not None else '-'} "
            f"budget={budget} models={','.join(client.models) if client.models else '-'} expires={expires}")


_CLEAR = "none"  # `keys update --budget-usd none` clears a term


def _from_text(name, text):
    """A term given on the command line, as the admin API's JSON would give it."""
    if text.strip().lower() == _CLEAR:
        return None
    if name == "budget_usd":
        try:
            return float(text)
        except ValueError:
            raise terms.BadTerm(name, f"{text[:40]!r} is not a number of USD") from None
    if name == "models":
        return [item.strip() for item in text.split(",") if item.strip()]
    if name == "daily_token_quota":
        if not (text.strip().isascii() and text.strip().isdigit()):  # "²" is a digit to isdigit(), not to int()
            raise terms.BadTerm(name, f"{text[:40]!r} is not a whole number of tokens")
        return int(text.strip())  # strip() takes \x1c-\x1f off as space; int() would refuse them
    return text


def _terms(options, current_period=None):
    """The terms the options give (those left out are not changed), checked as the admin API checks them."""
    given = {name: _from_text(name, value) for name, value in options.items() if value is not None}
    try:
        return terms.parse(given, current_period)
    except terms.BadTerm as exc:
        raise click.BadParameter(exc.message, param_hint=f"--{exc.field.replace('_', '-')}") from None


def _term_options(command):
    for option in reversed((
            click.option("--budget-usd", help="USD the key may spend per budget period (e.g. 25)"),
            click.option("--budget-period", help="day or month (UTC); month when --budget-usd comes alone"),
            click.option("--models", help="The only models it may use, comma-separated"),
            click.option("--expires-at", help="ISO 8601 date or date-time (UTC) from which the key is refused"))):
        command = option(command)
    return command


@cli.cli.command("create")
@click.argument("name")
@click.option("--rate-limit", help="Override of RATE_LIMIT, e.g. 10/minute;1000/day")
@click.option("--token-quota", type=click.IntRange(min=0, max=INTEGER_MAX),
              help="Tokens a day (UTC); 0 for unlimited")
@_term_options
def create_command(name, rate_limit, token_quota, **options):
    """Issue a key for NAME; the secret is printed once."""
    if rate_limit and not valid_rate_limit(rate_limit):
        raise click.BadParameter(f"{rate_limit!r} is not a limit such as 10/minute;1000/day")
    try:
        terms.name(name)
    except terms.BadTerm as exc:
        raise click.BadParameter(exc.message, param_hint="NAME") from None
    given = _terms(options)
    client, secret = clients.create(name, rate_limit, token_quota, **given)
    click.echo(f"Created client {client.id} ({client.name}). Its key, shown only now:\n{secret}")


@cli.cli.command("update")
@click.argument("client")
@click.option("--rate-limit", help="Override of RATE_LIMIT, e.g. 10/minute;1000/day (none: the default)")
@click.option("--token-quota", "daily_token_quota", help="Tokens a day (UTC); 0 unlimited (none: the default)")
@_term_options
def update_command(client, **options):
    """Change the terms of CLIENT (an id or a name); `none` clears one (--budget-usd none: no budget)."""
    try:
        found = clients.resolve(client)
        updated = clients.update(found.id, **_terms(options, found.budget_period))
    except clients.ClientNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Updated client {updated.id} ({updated.name}): {_show(updated).strip()}")


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
