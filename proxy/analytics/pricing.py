"""What tokens cost: a default table for current Gemini models, overridable by the operator."""

# USD per million tokens (input, output), Google's paid-tier list prices for prompts up to 200k tokens.
DEFAULT_PRICES = {
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-embedding-001": (0.15, 0.0),
    "text-embedding-004": (0.0, 0.0),
}


class PriceTable:
    def __init__(self, overrides=None):
        self.prices = {**DEFAULT_PRICES, **(overrides or {})}

    def price(self, model):
        """(input, output) per million tokens; an unknown model costs nothing, and says so."""
        if model in self.prices:
            return self.prices[model]
        # Versioned names (gemini-2.5-flash-001, -preview-05-20) cost what their family costs.
        family = max((name for name in self.prices if model and model.startswith(name)), key=len, default=None)
        return self.prices[family] if family else (0.0, 0.0)

    def known(self, model):
        return model in self.prices or any(model and model.startswith(name) for name in self.prices)

    def cost(self, model, prompt_tokens, completion_tokens):
        price_in, price_out = self.price(model)
        return ((prompt_tokens or 0) * price_in + (completion_tokens or 0) * price_out) / 1_000_000

    def cheapest(self, models):
        priced = [m for m in models if self.known(m)]
        return min(priced, key=lambda m: sum(self.price(m)), default=None)
