"""The budgets' check before a request goes upstream: its estimated cost held against every budget that
applies, or the request refused (429 BUDGET_EXCEEDED, Retry-After at the period's end)."""
import sqlite3

from flask import g

from ..errors import BudgetExceeded
from ..requestctx import current as current_state, current_application, current_request
from .batch_budgets import batch_estimate, is_batch_creation, manages_a_batch
from .budgets import (ADJECTIVES, MICRO, OPERATOR, budgets_of, estimate_micro, hold_id, model_of, payload_of,
                      period_end, prices_of, utcnow)
from .quotas import UNMETERED_PATHS, is_generation

_HELD_RETRY_SECONDS = 1  # a budget held by requests in flight frees up as soon as they finish


def _generation_estimate(state, app):
    if not is_generation(state):  # the quotas' rule: which requests can spend output
        return 0
    body = current_request().get_data(cache=True)
    payload = payload_of(body)
    return estimate_micro(body, payload, model_of(state, payload, app), prices_of(app),
                          app.config["MAX_OUTPUT_TOKENS_LIMIT"])


def check_budget():
    """before_request: hold this request's estimated cost against every budget that applies, or refuse it
    (429 BUDGET_EXCEEDED, Retry-After at the period's end) when one is spent; count_spend settles it."""
    state = current_state()
    incoming = current_request()
    if not state.recorded_area or incoming.method == "OPTIONS" or incoming.path in UNMETERED_PATHS:
        return
    app = current_application()
    applied = budgets_of(state.client, app.config)
    if not applied or manages_a_batch(state):
        return
    batch = is_batch_creation(state)
    estimate = batch_estimate(incoming.get_data(cache=True), state, app) if batch else _generation_estimate(state, app)
    ledgers = app.extensions["budgets"]
    try:
        ledgers.floor(applied, state.started_at, prices_of(app), app.extensions["quotas"].warn)
        refused = ledgers.reserve(hold_id(getattr(state.client, "id", None), state.request_id), applied, estimate,
                                  state.started_at)
    except sqlite3.Error:
        app.extensions["quotas"].warn("budget unchecked: the budget ledger did not answer")
        return
    if refused is not None:
        raise _refusal(*refused, state.started_at)
    if batch:  # counted as spent once Gemini has made the batch (batch_created)
        g.budget_batch = (estimate, applied, state.started_at)


def _refusal(scope, period, budget, reservation, now):
    whose = "The operator's monthly budget" if scope == OPERATOR else f"This key's {ADJECTIVES[period]} budget"
    limit = f"{budget / MICRO:.2f} USD"
    if reservation.used >= budget:
        ends = period_end(period, now)
        return BudgetExceeded(f"{whose} of {limit} is spent ({reservation.used / MICRO:.4f} USD this "
                              f"{period}); it resets at {ends:%Y-%m-%dT%H:%M:%SZ}.",
                              retry_after=(ends - utcnow()).total_seconds())
    return BudgetExceeded(f"{whose} of {limit} is held by requests in flight ({reservation.used / MICRO:.4f} USD "
                          f"spent, {reservation.held / MICRO:.4f} USD reserved); retry when they finish.",
                          retry_after=_HELD_RETRY_SECONDS)
