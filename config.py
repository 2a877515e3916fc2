"""Settings read once from the environment (and `.env`), validated at start-up."""
import math
import os
import re
from urllib.parse import urlparse

from dotenv import load_dotenv


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _text(env, name, default):
    value = env.get(name, "").strip()
    return value or default


def _list(env, name, default=""):
    return [item.strip() for item in _text(env, name, default).split(",") if item.strip()]


def _networks(env, name, default):
    """Addresses or networks, comma-separated; "*" trusts every peer."""
    import ipaddress

    entries = _list(env, name, default)
    if "*" in entries:
        return ["0.0.0.0/0", "::/0"]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not an IP address or network") from None
    return entries


def _database_url(env, name):
    url = _text(env, name, None)
    scheme, separator, rest = (url or "").partition("://")
    # The bundled PostgreSQL driver is psycopg 3, which yields to gevent; SQLAlchemy reads a bare
    # postgresql:// as psycopg2, which would block a worker's every request while it waits.
    if separator and scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    return url


def _number(env, name, default, kind=float, minimum=None, maximum=None):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={raw!r} must be at most {maximum}")
    return value


def _flag(env, name, default):
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be true or false")


def _choice(env, name, allowed, default):
    value = _text(env, name, default).lower()
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(allowed)}")
    return value


def _url(env, name, default):
    value = _text(env, name, default).rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name}={value!r} must be an http(s) URL")
    return value


def _redis_url(env, name):
    value = env.get(name, "").strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{name} must be empty or a redis://, rediss:// or unix:// URL")
    return value


def _rate_limit_storage(env, name):
    value = env.get(name, "").strip()
    if value and not value.startswith(("memory://", "sqlite:///", "redis", "valkey")):
        raise ConfigError(f"{name} must be empty (a file beside the database), memory://, sqlite:///<file> "
                          "or a redis:// URL")
    return value


def _log_level(env, name, default):
    value = _text(env, name, default).upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{name}={value!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


def _fallback_scope(env, name):
    """false: never; true: every model; or a comma list of the models whose requests may fall back."""
    raw = _text(env, name, "false")
    if raw.lower() in ("0", "false", "no", "off"):
        return ()
    if raw.lower() in ("1", "true", "yes", "on", "*"):
        return ("*",)
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def valid_rate_limit(value):
    """Whether `value` is a Flask-Limiter limit such as 60/minute;5000/day."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        return False
    return True


def _rate_limit(env, name):
    value = _text(env, name, "")
    if value and not valid_rate_limit(value):
        raise ConfigError(f"{name}={value!r} is not a rate limit such as 60/minute;5000/day")
    return value


# MODEL_PRICES' fields: USD per million tokens, or a share of the list price (batch, flex, priority).
_PRICE_KEYS = ("input", "output", "cached", "long_input", "long_output", "long_cached", "batch", "flex",
               "priority")
_PRICES_SHAPE = ("model=input/output[/cached][;long=input/output[/cached]][;batch=share][;flex=share]"
                 "[;priority=share] (USD per million tokens; any field also as field=value, e.g. "
                 "gemini-2.5-pro=priority=2)")


# Far above any real price, yet low enough that no request's cost overflows a float (1e308 did, into a 500).
PRICE_MAX = 1_000_000_000  # USD per million tokens, or times the list price for a share
# ASCII only (float() takes "１" and "1_0"); signs and inf/nan pass here to be refused by name below.
_DECIMAL = re.compile(r"\s*[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)\s*", re.I)
_PRICED_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")


def _price_numbers(text, counts=(1,)):
    parts = text.split("/")
    if not all(_DECIMAL.fullmatch(x) for x in parts):
        raise ValueError(f"{text.strip()!r} is not a number" + (" (or numbers split by /)" if counts != (1,) else ""))
    numbers = tuple(float(x) for x in parts)
    if len(numbers) not in counts:
        raise ValueError(f"{text.strip()!r} should be {' or '.join(str(n) for n in counts)} number(s)")
    if any(not math.isfinite(x) or not 0 <= x <= PRICE_MAX for x in numbers):
        raise ValueError(f"{text.strip()!r} must be finite and 0 or more, at most {PRICE_MAX:g}")
    return numbers


def _price_entry(spec):
    """One model's fields from `input/output[/cached];key=value;...`; ValueError saying why it is not."""
    entry = {}
    for position, part in enumerate(p.strip() for p in spec.split(";")):
        key, equals, value = (text.strip() for text in part.partition("="))
        if not equals and position == 0:
            entry.update(zip(("input", "output", "cached"), _price_numbers(part, (2, 3))))
        elif key == "long":
            entry["long"] = _price_numbers(value, (2, 3))
        elif key in entry:
            raise ValueError(f"{key} is given twice")
        elif key in _PRICE_KEYS:
            entry[key] = _price_numbers(value)[0]
        else:
            raise ValueError(f"{part!r} is not a price field")
    if not entry:
        raise ValueError("no price is given")
    return entry


def _prices(env, name):
    """MODEL_PRICES: per model, the prices over the built-in table (proxy/analytics/pricing.py), comma-
    separated. Whether a model the table lacks has both an input and an output price is checked when the
    app is built, against that table."""
    prices = {}
    for item in _list(env, name):
        model, _, spec = (text.strip() for text in item.partition("="))
        try:
            if not _PRICED_MODEL.fullmatch(model):
                raise ValueError("the model's name must be 1 to 100 letters, digits, '.', '_', '-' or '/'")
            if model in prices:
                raise ValueError(f"{model} is given twice")
            prices[model] = _price_entry(spec)
        except ValueError as exc:
            raise ConfigError(f"{name}: {item!r}: {exc}; each entry is {_PRICES_SHAPE}") from None
    return prices


BUDGET_USD_MAX = 1_000_000_000  # USD: a budget in micro-dollars stays exact in Redis's Lua numbers (2**53)


def _budget(env, name):
    """A budget in USD: 0 (none) up to BUDGET_USD_MAX; NaN and infinities are refused, not compared."""
    value = _number(env, name, 0.0, minimum=0.0, maximum=BUDGET_USD_MAX)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number of USD")
    return value


def _thresholds(env, name, default):
    """Shares of a budget (0.8 is 80%) past which an alert goes out, ascending, each above 0 and at most 10."""
    try:
        shares = sorted({float(item) for item in _list(env, name, default)})
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated shares of a budget, such as 0.8,1.0") from None
    if not shares or any(not math.isfinite(x) or not 0 < x <= 10 for x in shares):
        raise ConfigError(f"{name} must be comma-separated shares of a budget above 0 and at most 10, such as 0.8,1.0")
    return shares


def _webhook_url(env, name):
    """An http(s) URL used exactly as given, never echoed in the error: a webhook's URL is often its secret."""
    value = _text(env, name, "")
    parsed = urlparse(value)
    if value and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        raise ConfigError(f"{name} must be empty or an http(s) URL (its value is not shown: it may hold a token)")
    return value


def load_settings(env=None):
    """Return the Flask config mapping for `env` (default: the process environment)."""
    if env is None:
        # The .env in the working directory; tests pass their own mapping and never see it.
        load_dotenv(os.path.join(os.getcwd(), ".env"))
        env = os.environ
    settings = {
        # Upstream
        "GEMINI_API_KEYS": _list(env, "GEMINI_API_KEY"),
        "GEMINI_MODELS": _list(env, "GEMINI_MODELS", "gemini-2.5-flash,gemini-2.5-flash-lite"),
        "GEMINI_BASE_URL": _url(env, "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"),
        # Storage; None means a SQLite file in the instance folder, resolved by the factory.
        "SQLALCHEMY_DATABASE_URI": _database_url(env, "DATABASE_URL"),
        "SQLITE_BUSY_TIMEOUT_SECONDS": _number(env, "SQLITE_BUSY_TIMEOUT_SECONDS", 15.0, minimum=0.1),
        # None: a folder beside the SQLite file (or in the instance folder for a networked database).
        "SPOOL_DIR": _text(env, "SPOOL_DIR", None),
        "SPOOL_REPLAY_SECONDS": _number(env, "SPOOL_REPLAY_SECONDS", 5.0, minimum=0.1),
        "RECORD_GATHER_SECONDS": _number(env, "RECORD_GATHER_SECONDS", 0.05, minimum=0.0, maximum=5.0),
        # Serving
        "PORT": _number(env, "PORT", 8000, int, minimum=1, maximum=65535),
        "FORWARDED_ALLOW_IPS": _networks(env, "FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        "LOG_LEVEL": _log_level(env, "LOG_LEVEL", "INFO"),
        "MAX_CONTENT_LENGTH": _number(env, "MAX_BODY_BYTES", 32 * 1024 * 1024, int, minimum=1024),
        "BODY_READ_SECONDS": _number(env, "BODY_READ_SECONDS", 30.0, minimum=0.1, maximum=3600),
        # Deadlines and retry (seconds unless named otherwise)
        "REQUEST_DEADLINE_SECONDS": _number(env, "REQUEST_DEADLINE_SECONDS", 30.0, minimum=1),
        "UPSTREAM_TIMEOUT_SECONDS": _number(env, "UPSTREAM_TIMEOUT_SECONDS", 20.0, minimum=0.1),
        "UPSTREAM_CONNECT_TIMEOUT_SECONDS": _number(env, "UPSTREAM_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.1),
        "UPSTREAM_POOL_SIZE": _number(env, "UPSTREAM_POOL_SIZE", 1000, int, minimum=1),
        # HTTP/2 to an https:// GEMINI_BASE_URL (a worker's calls share a few connections); false: HTTP/1.1.
        "UPSTREAM_HTTP2": _flag(env, "UPSTREAM_HTTP2", True),
        "RETRY_MAX_ATTEMPTS": _number(env, "RETRY_MAX_ATTEMPTS", 3, int, minimum=1, maximum=20),
        "RETRY_INITIAL_DELAY_SECONDS": _number(env, "RETRY_INITIAL_DELAY_SECONDS", 0.5, minimum=0),
        "RETRY_MAX_DELAY_SECONDS": _number(env, "RETRY_MAX_DELAY_SECONDS", 8.0, minimum=0),
        "RETRY_MULTIPLIER": _number(env, "RETRY_MULTIPLIER", 2.0, minimum=1),
        "RETRY_HONOR_DELAY_MAX_SECONDS": _number(env, "RETRY_HONOR_DELAY_MAX_SECONDS", 10.0, minimum=0),
        "QUOTA_COOLDOWN_SECONDS": _number(env, "QUOTA_COOLDOWN_SECONDS", 60.0, minimum=0),
        "FALLBACK_ENABLED": _flag(env, "FALLBACK_ENABLED", True),
        # Native pass-through
        "PASSTHROUGH_FALLBACK": _fallback_scope(env, "PASSTHROUGH_FALLBACK"),
        "PASSTHROUGH_MAX_ATTEMPTS": _number(env, "PASSTHROUGH_MAX_ATTEMPTS", 1, int, minimum=1, maximum=10),
        "LOG_BODIES": _flag(env, "LOG_BODIES", True),
        "LOG_BODY_MAX_BYTES": _number(env, "LOG_BODY_MAX_BYTES", 16 * 1024 * 1024, int, minimum=0),
        "UPLOAD_URL_SECONDS": _number(env, "UPLOAD_URL_SECONDS", 86400, int, minimum=60, maximum=7 * 86400),
        # The Live API (WebSocket sessions)
        "LIVE_SESSIONS_PER_CLIENT": _number(env, "LIVE_SESSIONS_PER_CLIENT", 10, int, minimum=0),
        "LIVE_SETUP_SECONDS": _number(env, "LIVE_SETUP_SECONDS", 30.0, minimum=0.1, maximum=600),
        "LIVE_GOAWAY_SECONDS": _number(env, "LIVE_GOAWAY_SECONDS", 10.0, minimum=0, maximum=600),
        # Access control and limits
        "API_KEYS": _list(env, "API_KEYS"),
        "REQUIRE_API_KEY": _flag(env, "REQUIRE_API_KEY", False),
        "CLIENT_CACHE_SECONDS": _number(env, "CLIENT_CACHE_SECONDS", 10.0, minimum=0.0),
        "ADMIN_API_KEY": _text(env, "ADMIN_API_KEY", ""),
        "RATE_LIMIT": _rate_limit(env, "RATE_LIMIT"),
        # "" counts rate limits in a file beside the database (this host's workers); redis:// shares them.
        "RATE_LIMIT_STORAGE_URL": _rate_limit_storage(env, "RATE_LIMIT_STORAGE_URL"),
        "DAILY_TOKEN_QUOTA": _number(env, "DAILY_TOKEN_QUOTA", 0, int, minimum=0),
        # "" keeps the quota ledger in a file beside the database (this instance's workers); redis:// shares it.
        "QUOTA_STORAGE_URL": _redis_url(env, "QUOTA_STORAGE_URL"),
        # Key x model cool-downs: "" shares them through a file beside the database (this host's workers);
        # redis:// shares them with every instance. Empty, it is QUOTA_STORAGE_URL's Redis, if any.
        "COOLDOWN_STORAGE_URL": _redis_url(env, "COOLDOWN_STORAGE_URL") or _redis_url(env, "QUOTA_STORAGE_URL"),
        "COOLDOWN_REFRESH_SECONDS": _number(env, "COOLDOWN_REFRESH_SECONDS", 1.0, minimum=0.0, maximum=60.0),
        "QUOTA_HOLD_SECONDS": _number(env, "QUOTA_HOLD_SECONDS", 300.0, minimum=1),
        # Budgets in USD (client budgets are set per key); 0: no operator-wide monthly budget
        "OPERATOR_BUDGET_USD": _budget(env, "OPERATOR_BUDGET_USD"),
        "BUDGET_ALERT_THRESHOLDS": _thresholds(env, "BUDGET_ALERT_THRESHOLDS", "0.8,1.0"),
        "ALERT_WEBHOOK_URL": _webhook_url(env, "ALERT_WEBHOOK_URL"),
        "ALERT_WEBHOOK_TIMEOUT_SECONDS": _number(env, "ALERT_WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60),
        "ALERT_WEBHOOK_ATTEMPTS": _number(env, "ALERT_WEBHOOK_ATTEMPTS", 3, int, minimum=1, maximum=10),
        "CORS_ORIGINS": _list(env, "CORS_ORIGINS"),
        # Response cache
        "CACHE_ENABLED": _flag(env, "CACHE_ENABLED", False),
        "CACHE_TTL_SECONDS": _number(env, "CACHE_TTL_SECONDS", 3600.0, minimum=1),
        "CACHE_MAX_ENTRIES": _number(env, "CACHE_MAX_ENTRIES", 10_000, int, minimum=1),
        "CACHE_MODE": _choice(env, "CACHE_MODE", ("deterministic", "all"), "deterministic"),
        "CACHE_STORAGE_URL": _text(env, "CACHE_STORAGE_URL", "database"),
        "CACHE_MAX_BODY_BYTES": _number(env, "CACHE_MAX_BODY_BYTES", 4 * 1024 * 1024, int, minimum=1024),
        # Analytics and retention (days; 0 keeps forever)
        "MODEL_PRICES": _prices(env, "MODEL_PRICES"),
        # How often one worker of the host asks Gemini about the unfinished batches it knows (0: never;
        # a client's own poll counts a finished batch too).
        "BATCH_USAGE_INTERVAL_SECONDS": _number(env, "BATCH_USAGE_INTERVAL_SECONDS", 300.0, minimum=0),
        "RETENTION_DAYS": _number(env, "RETENTION_DAYS", 0, int, minimum=0),
        "BODY_RETENTION_DAYS": _number(env, "BODY_RETENTION_DAYS", 0, int, minimum=0),
        "RETENTION_INTERVAL_SECONDS": _number(env, "RETENTION_INTERVAL_SECONDS", 0, int, minimum=0),
        "ROLLUP_INTERVAL_SECONDS": _number(env, "ROLLUP_INTERVAL_SECONDS", 60, int, minimum=0),
        # Input bounds; ALLOWED_MODELS empty: the chain on /gemini APIs, any model on the pass-through
        "ALLOWED_MODELS": _list(env, "ALLOWED_MODELS"),
        "MAX_PROMPT_CHARS": _number(env, "MAX_PROMPT_CHARS", 1_000_000, int, minimum=1),
        "PROXY_MAX_PROMPT_CHARS": _number(env, "PROXY_MAX_PROMPT_CHARS", 10_000, int, minimum=1),
        "NATIVE_MAX_PROMPT_CHARS": _number(env, "NATIVE_MAX_PROMPT_CHARS", 0, int, minimum=0),
        "MAX_OUTPUT_TOKENS_LIMIT": _number(env, "MAX_OUTPUT_TOKENS_LIMIT", 65_536, int, minimum=1),
    }
    if settings["UPSTREAM_TIMEOUT_SECONDS"] > settings["REQUEST_DEADLINE_SECONDS"]:
        raise ConfigError("UPSTREAM_TIMEOUT_SECONDS must not exceed REQUEST_DEADLINE_SECONDS")
    if settings["ADMIN_API_KEY"] and len(settings["ADMIN_API_KEY"]) < 16:
        raise ConfigError("ADMIN_API_KEY must be at least 16 characters")
    if not settings["GEMINI_MODELS"]:
        raise ConfigError("GEMINI_MODELS must name at least one model")
    return settings
