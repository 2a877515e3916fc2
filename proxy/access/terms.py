"""A client key's terms as an operator gives them (admin API or CLI): checked hard here, once for both, so a
bad budget, period, model list or date is a clear error naming the field, never a 500 or a silent default."""
import math
from datetime import datetime, timezone

from config import BUDGET_USD_MAX, valid_rate_limit
from models import INTEGER_MAX

from ..wire.routes import valid_model_name
from .budgets import PERIODS

MODELS_MAX = 50  # models one key's allowlist names at most
_YEARS = (2000, 9000)  # an expiry outside these years is a typo, not a plan


class BadTerm(ValueError):
    """One term is malformed; `field` names it."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


NAME_MAX = 100  # characters in a key's name


def name(value):
    """Who the key is for: no control character (PostgreSQL refuses a NUL in text, a newline forges a log
    or CLI line)."""
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX:
        raise BadTerm("name", f"must be 1 to {NAME_MAX} characters")
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in value):
        raise BadTerm("name", "must not hold control characters")
    return value


def budget_usd(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadTerm("budget_usd", "must be a number of USD")
    value = float(value) + 0.0  # -0.0 becomes 0.0 (PostgreSQL would keep and show the sign)
    if not math.isfinite(value) or not 0 <= value <= BUDGET_USD_MAX:
        raise BadTerm("budget_usd", f"must be from 0 to {BUDGET_USD_MAX:,} USD")
    return value


def budget_period(value):
    if value not in PERIODS:
        raise BadTerm("budget_period", f"must be one of: {', '.join(PERIODS)}")
    return value


def models(value):
    """A list of model names; duplicates dropped, order kept."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadTerm("models", "must be a list of model names")
    if not value:
        raise BadTerm("models", "must name at least one model (null allows every model; revoke a key to stop it)")
    if len(value) > MODELS_MAX:
        raise BadTerm("models", f"names at most {MODELS_MAX} models")
    bare = []
    for item in value:
        if not valid_model_name(item):
            raise BadTerm("models", f"{item[:80]!r} is not a Gemini model name")
        name = item.removeprefix("models/")
        if name not in bare:
            bare.append(name)
    return bare


def expires_at(value):
    """An ISO 8601 date or date-time (a time without an offset is UTC), as naive UTC for the database."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadTerm("expires_at", "must be an ISO 8601 date or date-time, such as 2027-01-31T00:00:00Z")
    try:
        when = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise BadTerm("expires_at", f"{value[:40]!r} is not an ISO 8601 date or date-time") from None
    if when.tzinfo is not None:
        try:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise BadTerm("expires_at", "is out of range") from None
    if not _YEARS[0] <= when.year <= _YEARS[1]:
        raise BadTerm("expires_at", f"must fall between the years {_YEARS[0]} and {_YEARS[1]}")
    return when


def rate_limit(value):
    if not isinstance(value, str) or len(value) > 100 or not valid_rate_limit(value):
        raise BadTerm("rate_limit", "must be a limit such as 10/minute;1000/day")
    return value


def daily_token_quota(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INTEGER_MAX:
        raise BadTerm("daily_token_quota", f"must be a whole number of tokens from 0 to {INTEGER_MAX}")
    return value


PARSERS = {"rate_limit": rate_limit, "daily_token_quota": daily_token_quota, "budget_usd": budget_usd,
           "budget_period": budget_period, "models": models, "expires_at": expires_at}


def parse(given, current_period=None):
    """The terms in `given` (a mapping; None clears a term), checked. A budget given with no period, to a
    key that has none (`current_period`), is monthly; clearing the budget clears its period."""
    unknown = sorted(set(given) - set(PARSERS))
    if unknown:
        raise BadTerm(unknown[0], "is not a term of a key")
    if "budget_period" in given and given["budget_period"] is None and \
            not ("budget_usd" in given and given["budget_usd"] is None):
        # A budget without a period is counted nowhere: clearing the period alone would switch it off.
        raise BadTerm("budget_period", "is cleared only with the budget (send budget_usd null as well)")
    terms = {name: None if value is None else PARSERS[name](value) for name, value in given.items()}
    if terms.get("budget_usd") is not None and terms.get("budget_period") is None and \
            (current_period is None or "budget_period" in given):
        terms["budget_period"] = "month"
    if "budget_usd" in given and terms["budget_usd"] is None:
        terms["budget_period"] = None  # no budget, no period
    return terms
