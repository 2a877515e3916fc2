"""Each request's cost, computed once as its record is finished and stored with it (cost_usd, the price's
source and rates), so that a later price change does not rewrite history. An observer of the record writer,
registered first by the app factory, so the observers after it (token quotas, budgets) see the cost."""
import copy
from functools import partial

from config import ConfigError

from ..wire.usage import Usage
from .pricing import PriceError, PriceTable

CACHE_HIT = "cache"  # price_source of an answer the response cache gave: Gemini billed nothing for it


def price_table(app):
    """The app's PriceTable, built again only when MODEL_PRICES has changed (tests change it on a built app)."""
    overrides = app.config.get("MODEL_PRICES") or {}
    held = app.extensions.get("price_table_built")
    if held is None or held[0] != overrides:
        held = app.extensions["price_table_built"] = (copy.deepcopy(overrides), PriceTable(overrides))
    return held[1]


def install(app):
    """Check MODEL_PRICES against the built-in table (a bad entry stops the start, named) and cost every
    record from now on."""
    try:
        price_table(app)
    except PriceError as exc:
        raise ConfigError(str(exc)) from None
    app.extensions["records"].watch_finished(partial(cost_record, app))


def usage_of_record(record):
    """The wire.usage.Usage a storage.records.RequestRecord holds."""
    return Usage(prompt=record.prompt_tokens, candidates=record.completion_tokens, total=record.total_tokens,
                 cached=record.cached_tokens, thoughts=record.thoughts_tokens,
                 tool_use_prompt=record.tool_use_prompt_tokens, service_tier=record.service_tier)


def cost_record(app, record):
    """Set the record's cost_usd, price_source and price_rates (JSON), unless it has them already. A record
    without tokens costs 0 and keeps no rates; a cache hit costs 0 (its savings are reported apart)."""
    if record.cost_usd is not None:
        return
    usage = usage_of_record(record)
    quote = price_table(app).quote(record.model_used, usage, bool(record.batch), at=record.created_at)
    hit = record.cache_status == "HIT"
    record.cost_usd = 0.0 if hit else quote.cost_usd
    record.price_source = CACHE_HIT if hit else quote.source
    counted = (record.prompt_tokens, record.completion_tokens, record.total_tokens, record.thoughts_tokens)
    record.price_rates = quote.rates_json if record.model_used and any(counted) else None
