"""What tokens cost: a built-in table of Gemini's current models, which MODEL_PRICES overrides field by field."""
import json
import math
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime
from typing import Optional

from config import PRICE_MAX

from ..wire.usage import Usage

# USD per million tokens, Google's paid-tier list prices for text (ai.google.dev/gemini-api/docs/pricing),
# read on 2026-12-03 from transcriptions of that page (api-evangelist/gemini plans/gemini-plans-pricing.yml,
# read 2026-09-20; api-evangelist/deepmind plans/deepmind-plans-pricing.yml, read 2026-10-07) and, where
# those lack a figure, from articles quoting it (named per line). The page itself was not at hand: figures
# marked "unverified" follow Google's rule that a cached token costs a tenth of an input token
# (ai.google.dev/gemini-api/docs/optimization: "Caching: 90% discount"), not a price read for that model.
# Each: input, output (thinking included), cached, and for models priced higher above LONG_PROMPT_TOKENS,
# long=(input, output, cached) for the whole of such a request.
TABLE_DATE = "2026-12-03"
SOURCE = f"default:{TABLE_DATE}"
OVERRIDDEN = "MODEL_PRICES"
UNPRICED = "unpriced"
LONG_PROMPT_TOKENS = 200_000  # a prompt above this many tokens is billed at the model's long-context prices
CACHED_SHARE = 0.10  # of the input price, for a model whose cached price is not given (Google: 90% off)
BATCH_SHARE = 0.5  # of every price, for a batch's tokens (Google: "Batch API (50% cost reduction)")
# serviceTier multipliers. Google: Flex "50% discount", Priority "75% to 100% more than standard"
# (docs/optimization); LLM Gateway's docs (docs.llmgateway.io/features/service-tiers) say +80% for Gemini.
# Unverified per model: 1.8 is the figure used until MODEL_PRICES says otherwise.
FLEX = 0.5
PRIORITY = 1.8

_DEFAULTS = {
    # 3.8 Flash: $0.75 / $3.75 "through December 31, 2026", then $1.50 / $7.50 (see _SCHEDULED).
    # Cached unverified.
    "gemini-3.8-flash": dict(input=0.75, output=3.75, cached=0.075),
    # 3.5 Flash: both transcriptions; cached $0.15 as wowhow.cloud's 3.5 Flash guide quotes it.
    "gemini-3.5-flash": dict(input=1.50, output=9.00, cached=0.15),
    "gemini-3.5-flash-lite": dict(input=0.30, output=2.50, cached=0.03),  # 2026-10-07; cached unverified
    # 3.1 Pro Preview: both transcriptions (<= 200k and > 200k); cached $0.20 as several resellers list it
    # (cloudprice.net, techjacksolutions.com 2026-06-09); the long-context cached price is unverified.
    "gemini-3.1-pro-preview": dict(input=2.00, output=12.00, cached=0.20, long=(4.00, 18.00, 0.40)),
    # 3 Pro Preview: priced as 3.1 Pro Preview was at its launch (Google's page, late 2025); unverified now.
    "gemini-3-pro-preview": dict(input=2.00, output=12.00, cached=0.20, long=(4.00, 18.00, 0.40)),
    # 3 Flash Preview: the page as factquire.com quoted it on 2026-07-04 ($0.50 / $3.00 / $0.05).
    "gemini-3-flash": dict(input=0.50, output=3.00, cached=0.05),
    # 3.1 Flash-Lite: the page (updated 2026-03-03) as macaron.im quotes it; -preview priced the same.
    "gemini-3.1-flash-lite": dict(input=0.25, output=1.50, cached=0.025),
    # 2.5: 2.5 Pro's <= 200k / > 200k input and 2.5 Flash's input in both transcriptions, 2.5 Flash-Lite's
    # output in both; the other 2.5 figures (and all cached ones) are the page's 2025 prices, unverified.
    "gemini-2.5-pro": dict(input=1.25, output=10.00, cached=0.125, long=(2.50, 15.00, 0.25)),
    "gemini-2.5-flash": dict(input=0.30, output=2.50, cached=0.03),
    "gemini-2.5-flash-lite": dict(input=0.10, output=0.40, cached=0.01),
    # 2.0: retired for new work; kept so that old rows and operators still on them are costed (2025 prices).
    "gemini-2.0-flash": dict(input=0.10, output=0.40, cached=0.025),
    "gemini-2.0-flash-lite": dict(input=0.075, output=0.30),
    # Live (text tokens; audio is priced higher and not told apart here): $0.50 / $2.00 as getmaxim.ai lists
    # gemini-live-2.5-flash-preview-native-audio-09-2025; unverified on Google's page.
    "gemini-live-2.5-flash": dict(input=0.50, output=2.00),
    "gemini-2.5-flash-native-audio": dict(input=0.50, output=2.00),
    # Embeddings: input only. Embedding 2's text input at $0.20 in both transcriptions.
    "gemini-embedding-2": dict(input=0.20, output=0.0),
    "gemini-embedding-001": dict(input=0.15, output=0.0),
    "text-embedding-004": dict(input=0.0, output=0.0),
}
# Prices the page announces ahead: (from when, UTC; the fields that change).
_SCHEDULED = {"gemini-3.8-flash": [(datetime(2027, 1, 1), dict(input=1.50, output=7.50, cached=0.15))]}

_FAMILIES_MAX = 1000  # model names whose family a table remembers
PRICE_FIELDS = ("input", "output", "cached", "long_input", "long_output", "long_cached", "batch", "flex",
                "priority")


class PriceError(ValueError):
    """A price entry that is not one; the message names the field."""


@dataclass(frozen=True)
class Price:
    """One model's prices: USD per million tokens of each billed kind, the long-context prices (None: the
    model has none), and the shares of those paid by a batch and by each serviceTier."""

    input: float
    output: float
    cached: float
    long_input: Optional[float] = None
    long_output: Optional[float] = None
    long_cached: Optional[float] = None
    batch: float = BATCH_SHARE
    flex: float = FLEX
    priority: float = PRIORITY

    @classmethod
    def of(cls, entry, base=None):
        """From a table entry: (input, output[, cached]), or a mapping of PRICE_FIELDS (with long=(input,
        output[, cached]) for the three long_ ones). A mapping without input and output changes `base`,
        field by field; with them it is a new price (cached at CACHED_SHARE of the input unless given,
        no long-context prices unless given)."""
        if isinstance(entry, Price):
            return entry
        if isinstance(entry, (tuple, list)):
            entry = dict(zip(("input", "output", "cached"), entry))
        if not isinstance(entry, dict):
            raise PriceError("a price is (input, output[, cached]) or a mapping of its fields")
        entry = dict(entry)
        if "long" in entry:
            long_ = entry.pop("long")
            if not isinstance(long_, (tuple, list)) or len(long_) not in (2, 3):
                raise PriceError("long is input/output[/cached]")
            entry.update(zip(("long_input", "long_output", "long_cached"), long_))
        unknown = sorted(set(entry) - set(PRICE_FIELDS))
        if unknown:
            raise PriceError(f"{unknown[0]!r} is not a price field (fields: {', '.join(PRICE_FIELDS)}, long)")
        for name, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 <= value <= PRICE_MAX:  # past it, a request's cost can overflow to infinity
                raise PriceError(f"{name} must be a number, 0 or more, at most {PRICE_MAX:g}")
        if base is not None and not {"input", "output"} & set(entry):
            return replace(base, **{name: float(value) for name, value in entry.items()})
        if not {"input", "output"} <= set(entry):
            raise PriceError("a model the built-in table does not price needs an input and an output price")
        entry = {name: float(value) for name, value in entry.items()}
        entry.setdefault("cached", entry["input"] * CACHED_SHARE)
        if entry.get("long_input") is not None:
            entry.setdefault("long_output", entry["output"])
            entry.setdefault("long_cached", entry["long_input"] * CACHED_SHARE)
        elif {"long_output", "long_cached"} & set(entry):
            raise PriceError("long-context prices need long_input")
        return cls(**entry)

    @property
    def has_long(self):
        return self.long_input is not None

    def rates(self, long_context=False):
        """(input, output, cached) per million tokens, at the long-context prices when they apply."""
        if long_context and self.has_long:
            return self.long_input, self.long_output, self.long_cached
        return self.input, self.output, self.cached

    def share(self, batch=False, service_tier=None):
        """The share of the list price paid: a batch's, else its serviceTier's (standard and unsaid: 1)."""
        if batch:
            return self.batch
        return {"flex": self.flex, "priority": self.priority}.get(service_tier or "", 1.0)

    def describe(self):
        """The fields as a mapping (JSON-ready), without long-context ones the model has not."""
        return {name: getattr(self, name) for name in PRICE_FIELDS if getattr(self, name) is not None}

    @cached_property
    def json(self):
        """describe() as JSON, made once per price: every record stores it."""
        return json.dumps(self.describe(), separators=(",", ":"), sort_keys=True)


_FREE = Price(0.0, 0.0, 0.0)


def output_tokens(usage):
    """Tokens billed at the output price: the answer's and its thoughts'. When the answer did not say its
    thoughts (an SDK whose usage message has no thoughts_token_count), the tokens its total counts beyond
    the kinds it named are those thoughts."""
    billed = usage.output
    if usage.thoughts is None and usage.total is not None:
        named = (usage.prompt or 0) + (usage.candidates or 0) + (usage.tool_use_prompt or 0)
        billed += max(usage.total - named, 0)
    return billed


@dataclass(frozen=True)
class Quote:
    """A usage's cost and the price it was computed at, as a record stores them."""

    cost_usd: float
    source: str  # default:<table date> | MODEL_PRICES | unpriced
    price: Price

    @property
    def rates_json(self):
        return self.price.json


class PriceTable:
    """The built-in prices, with the operator's MODEL_PRICES over them (a mapping of model: entry)."""

    def __init__(self, overrides=None):
        self.prices = {name: Price.of(entry) for name, entry in _DEFAULTS.items()}
        self.overridden = set()
        for model, entry in (overrides or {}).items():
            try:
                self.prices[model] = Price.of(entry, base=self.prices.get(model))
            except PriceError as exc:
                raise PriceError(f"MODEL_PRICES: {model}: {exc}") from None
            self.overridden.add(model)
        self._families = {}
        self.scheduled = {model: changes for model, changes in _SCHEDULED.items() if model not in self.overridden}

    def family(self, model):
        """The table's name for `model`: itself, or the longest name it starts with (gemini-2.5-flash-001
        and -preview-05-20 cost what their family costs); None when unpriced."""
        if not model:
            return None
        if model in self.prices:
            return model
        if model not in self._families:
            if len(self._families) >= _FAMILIES_MAX:  # names come from clients: the memo stays bounded
                self._families.clear()
            self._families[model] = max((name for name in self.prices if model.startswith(name)), key=len,
                                        default=None)
        return self._families[model]

    def rates(self, model, at=None):
        """The model's Price (at `at`, a naive UTC datetime, for prices announced ahead); an unknown model
        costs nothing, and says so (known)."""
        name = self.family(model)
        if name is None:
            return _FREE
        price = self.prices[name]
        for since, changes in self.scheduled.get(name, ()):
            if at is not None and at >= since:
                price = replace(price, **changes)
        return price

    def source(self, model):
        name = self.family(model)
        if name is None:
            return UNPRICED
        return OVERRIDDEN if name in self.overridden else SOURCE

    def price(self, model):
        """(input, output) per million tokens."""
        rates = self.rates(model)
        return rates.input, rates.output

    def known(self, model):
        return self.family(model) is not None

    def quote(self, model, usage, batch=False, service_tier=None, long_context=None, at=None):
        """The Quote of a wire.usage.Usage: the prompt's uncached and tool-use tokens at the input price,
        its cached ones at the cached price, the answer's and its thoughts' at the output price; all at the
        long-context prices when the prompt is above LONG_PROMPT_TOKENS (long_context=False: never, for
        sums of many requests), and at a batch's share or the serviceTier's (usage.service_tier unless
        given)."""
        price = self.rates(model, at)
        prompt = usage.prompt or 0
        cached = min(usage.cached or 0, prompt)
        if long_context is None:
            long_context = prompt > LONG_PROMPT_TOKENS
        price_in, price_out, price_cached = price.rates(long_context)
        dollars = ((prompt - cached + (usage.tool_use_prompt or 0)) * price_in + cached * price_cached
                   + output_tokens(usage) * price_out) / 1_000_000
        tier = service_tier if service_tier is not None else usage.service_tier
        return Quote(dollars * price.share(batch, tier), self.source(model), price)

    def cost(self, model, usage, batch=False, service_tier=None, long_context=None, at=None):
        """USD for a wire.usage.Usage (see quote)."""
        return self.quote(model, usage, batch, service_tier, long_context, at).cost_usd

    def cheapest(self, models):
        priced = [m for m in models if self.known(m)]
        return min(priced, key=lambda m: sum(self.price(m)), default=None)


def usage_of(row):
    """The Usage a report's row of sums (facts.totals) holds."""
    return Usage(prompt=row.get("prompt_tokens") or 0, candidates=row.get("completion_tokens") or 0,
                 cached=row.get("cached_tokens") or 0, thoughts=row.get("thoughts_tokens") or 0,
                 tool_use_prompt=row.get("tool_use_prompt_tokens") or 0)
