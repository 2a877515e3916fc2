"""What tokens cost: a default table for current Gemini models, overridable by the operator."""
from typing import NamedTuple

from ..wire.usage import Usage

# USD per million tokens (input, output, cached), Google's paid-tier list prices for text prompts up to
# 200k tokens (ai.google.dev/gemini-api/docs/pricing). The cached prices are those that page gave in 2025,
# not checked again on 2026-12-03 (no copy of it was at hand): verify them. A model given as (input,
# output) has its cached tokens at CACHED_SHARE of its input price.
DEFAULT_PRICES = {
    "gemini-2.5-pro": (1.25, 10.00, 0.125),
    "gemini-2.5-flash": (0.30, 2.50, 0.03),
    "gemini-2.5-flash-lite": (0.10, 0.40, 0.01),
    "gemini-2.0-flash": (0.10, 0.40, 0.025),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-embedding-001": (0.15, 0.0),
    "text-embedding-004": (0.0, 0.0),
}
CACHED_SHARE = 0.25  # of the input price, for a model whose cached price is not given
BATCH_SHARE = 0.5  # of every price, for a batch's tokens


class Price(NamedTuple):
    """USD per million tokens of each billed kind."""

    input: float
    output: float
    cached: float

    @classmethod
    def of(cls, entry):
        """From a table entry: (input, output) or (input, output, cached)."""
        price_in, price_out, *cached = entry
        return cls(price_in, price_out, cached[0] if cached else price_in * CACHED_SHARE)


_FREE = Price(0.0, 0.0, 0.0)


class PriceTable:
    def __init__(self, overrides=None):
        self.prices = {name: Price.of(entry) for name, entry in {**DEFAULT_PRICES, **(overrides or {})}.items()}

    def rates(self, model):
        """The model's Price; an unknown model costs nothing, and says so (known)."""
        if model in self.prices:
            return self.prices[model]
        # Versioned names (gemini-2.5-flash-001, -preview-05-20) cost what their family costs.
        family = max((name for name in self.prices if model and model.startswith(name)), key=len, default=None)
        return self.prices[family] if family else _FREE

    def price(self, model):
        """(input, output) per million tokens."""
        rates = self.rates(model)
        return rates.input, rates.output

    def known(self, model):
        return model in self.prices or any(model and model.startswith(name) for name in self.prices)

    def cost(self, model, usage, batch=False):
        """USD for a wire.usage.Usage: the prompt's uncached and tool-use tokens at the input price, its
        cached ones at the cached price, the answer's and its thoughts' at the output price; a batch's at
        half of all that."""
        rates = self.rates(model)
        prompt, cached = usage.prompt or 0, min(usage.cached or 0, usage.prompt or 0)
        dollars = ((prompt - cached + (usage.tool_use_prompt or 0)) * rates.input + cached * rates.cached
                   + usage.output * rates.output) / 1_000_000
        return dollars * BATCH_SHARE if batch else dollars

    def cheapest(self, models):
        priced = [m for m in models if self.known(m)]
        return min(priced, key=lambda m: sum(self.price(m)), default=None)


def usage_of(row):
    """The Usage a report's row of sums (facts.totals) holds."""
    return Usage(prompt=row.get("prompt_tokens") or 0, candidates=row.get("completion_tokens") or 0,
                 cached=row.get("cached_tokens") or 0, thoughts=row.get("thoughts_tokens") or 0,
                 tool_use_prompt=row.get("tool_use_prompt_tokens") or 0)
