"""A client's own usage: today's and this budget period's tokens, requests and cost, what is left of its
budget and daily token quota, and when each resets (GET /gemini/usage)."""
from . import budgets
from .spend import recorded


def usage_of(client, app, now=None):
    """What GET /gemini/usage answers for `client` (an access.clients.Caller)."""
    now = now or budgets.utcnow()
    prices, config = budgets.prices_of(app), app.config
    period = client.budget_period or budgets.MONTH
    today = recorded(client.id, budgets.period_start(budgets.DAY, now), prices)
    this_period = recorded(client.id, budgets.period_start(period, now), prices)
    budget = None
    if client.budget_usd is not None and client.budget_period:
        spent = app.extensions["budgets"].spent(client.id, period, now) / budgets.MICRO
        budget = {"usd": client.budget_usd, "period": period, "spent_usd": round(spent, 6),
                  "remaining_usd": round(max(0.0, client.budget_usd - spent), 6),
                  "resets_at": budgets.period_end(period, now)}
    quota_size = client.daily_token_quota if client.daily_token_quota is not None else config["DAILY_TOKEN_QUOTA"]
    quota = None
    if quota_size:
        used = app.extensions["quotas"].used(client.id, now.date().isoformat())
        quota = {"daily_tokens": quota_size, "used": used, "remaining": max(0, quota_size - used),
                 "resets_at": budgets.period_end(budgets.DAY, now)}
    return {"client_id": client.id, "name": client.name, "generated_at": now,
            "today": dict(today, starts_at=budgets.period_start(budgets.DAY, now),
                          resets_at=budgets.period_end(budgets.DAY, now)),
            "period": dict(this_period, period=period, starts_at=budgets.period_start(period, now),
                           resets_at=budgets.period_end(period, now)),
            "budget": budget, "quota": quota,
            "models": list(client.models) if client.models is not None else None,
            "expires_at": client.expires_at}
