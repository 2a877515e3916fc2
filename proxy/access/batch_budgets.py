"""Budgets for batches: a batch's estimated cost (its inline requests at the model's batch prices) counts
as spent from its creation until its usage is counted, when its real cost replaces it, exactly once."""
import json
import sqlite3

from flask import current_app, g, request
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from models import OwnedResource, db

from ..errors import InvalidRequest
from ..requestctx import API
from ..wire import jsonbody
from ..wire.usage import Usage
from .budgets import PERIODS, model_of, period_key, prices_of, to_micro, utcnow
from .estimate import BYTES_PER_TOKEN, UNBOUNDED, refers_to_unseen, requested_output

BATCH_ACTIONS = frozenset({"batchGenerateContent", "asyncBatchEmbedContent"})
# Input a batch's request refers to rather than carries (a file, a cache): the largest context a Gemini
# model takes, so the estimate is a bound, not the whole budget (a batch's estimate stays counted for hours).
UNSEEN_INPUT_TOKENS = 1_048_576


def is_batch_creation(state):
    route = state.native.route if state.area != API and state.native is not None else None
    return route is not None and route.collection == "models" and route.action in BATCH_ACTIONS \
        and request.method == "POST"


def manages_a_batch(state):
    """A look at, cancel or deletion of a batch costs nothing and must go on with the budget spent: its
    running batches' estimates may be what spent it, and a look or a cancel is what gives them back."""
    route = state.native.route if state.area != API and state.native is not None else None
    return route is not None and route.collection == "batches"


def _batch_requests(payload):
    """The inline requests of a batch's body ({batch: {inputConfig: {requests: {requests: [...]}}}}), or
    None when its requests are in a file (inputConfig.fileName)."""
    batch = payload.get("batch", payload) if isinstance(payload, dict) else None
    config = batch.get("inputConfig", batch.get("input_config")) if isinstance(batch, dict) else None
    if isinstance(config, dict) and (config.get("fileName") or config.get("file_name")):
        return None
    held = config.get("requests") if isinstance(config, dict) else None
    items = held.get("requests") if isinstance(held, dict) else held
    return [item.get("request", item) if isinstance(item, dict) else item for item in items] \
        if isinstance(items, list) else []


def batch_estimate(body, state, app):
    """Micro-dollars a batch may cost, at the model's batch prices: each inline request's input (from its
    size) and the output it allows (the largest a model gives when it names none; none for embeddings).

    A batch whose requests are in a file is refused under a budget: the proxy never sees the file's
    contents (an upload's bytes go straight through), so no bound can be put on its cost, and a guess
    counted against a budget for up to a day would either let it overrun or stop the key's other calls."""
    try:
        payload = jsonbody.loads(body) if body else None
    except jsonbody.BadJson:
        return 0  # refused as a 400 upstream: no batch is made
    embedding = state.native.route.action == "asyncBatchEmbedContent"
    return estimate_batch(payload, model_of(state, payload, app), embedding, prices_of(app),
                          app.config["MAX_OUTPUT_TOKENS_LIMIT"])


def estimate_batch(payload, model, embedding, prices, default_output):
    """batch_estimate's sum, for a parsed body (any JSON value); InvalidRequest for a file-sourced batch."""
    requests = _batch_requests(payload)
    if requests is None:
        raise InvalidRequest("A batch whose requests are in a file cannot be costed before it runs, and a budget "
                             "applies to this key: send its requests inline (inputConfig.requests).")
    prompt = output = 0
    for each in requests or [payload]:  # a shape Gemini refuses: its body's size, once
        raw = json.dumps(each, separators=(",", ":")).encode()
        prompt += UNSEEN_INPUT_TOKENS if refers_to_unseen(raw) else len(raw) // BYTES_PER_TOKEN + 1
        output += 0 if embedding else min(requested_output(each) or default_output, UNBOUNDED)
    return to_micro(prices.cost(model, Usage(prompt=prompt, candidates=output, total=prompt + output), batch=True))


def _scopes_text(applied):
    return ",".join(f"{scope}:{period}" for scope, period, _ in applied)


def _scopes_of(text):
    scopes = []
    for part in (text or "").split(","):
        scope, _, period = part.partition(":")
        if scope.lstrip("-").isdigit() and period in PERIODS:
            scopes.append((int(scope), period))
    return scopes


def batch_created(names):
    """The pass-through's hook once Gemini has made a batch: its estimate is counted as spent in the ledgers
    (first, so a floor read meanwhile never misses it) and kept on its owned_resources row (so a worker's
    restart, another instance, or a new ledger still counts it) until settle_batch replaces it."""
    held = g.pop("budget_batch", None)
    name = next((each for each in names if each.startswith("batches/")), None)
    if held is None or name is None:
        return
    estimate, applied, at = held
    app = current_app._get_current_object()
    ledgers = app.extensions["budgets"]
    try:
        for scope, period, _ in applied:
            if estimate:
                ledgers.holds[period].spend(scope, period_key(period, at), estimate)
    except sqlite3.Error:  # the database row still counts it, through the floor
        app.extensions["quotas"].warn("batch estimate not counted: the budget ledger did not answer")
    try:
        db.session.execute(update(OwnedResource).where(OwnedResource.name == name).values(
            budget_micro=estimate, budget_scopes=_scopes_text(applied), budget_at=at))
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        app.extensions["quotas"].warn("batch estimate not kept in the database: this ledger alone counts it")


def settle_batch(app, name, cost_usd, now=None):
    """A batch's end (`cost_usd`: what its usage record cost; 0 when it failed, was cancelled, expired or
    is gone): its real cost replaces its estimate in every budget it counted against, exactly once (the
    database decides which caller does it). A batch ending in a later period than it began leaves its
    estimate in the old one (spent then, as far as that period knew) and spends its cost in the new one."""
    now = now or utcnow()
    try:
        won = db.session.execute(update(OwnedResource).where(
            OwnedResource.name == name, OwnedResource.budget_micro.is_not(None),
            OwnedResource.budget_settled_at.is_(None)).values(budget_settled_at=now)).rowcount == 1
        row = db.session.execute(select(OwnedResource.budget_micro, OwnedResource.budget_scopes,
                                        OwnedResource.budget_at).where(OwnedResource.name == name)).one_or_none()
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        app.extensions["quotas"].warn("batch budget not settled: the database did not answer (its estimate stays counted)")
        return False
    if not won or row is None:
        return False
    estimate, scopes, at = row
    cost, ledgers = to_micro(cost_usd or 0.0), app.extensions["budgets"]
    for scope, period in _scopes_of(scopes):
        same = at is not None and period_key(period, at) == period_key(period, now)
        change = cost - estimate if same else cost
        try:
            if change:
                ledgers.holds[period].spend(scope, period_key(period, now), change)
        except sqlite3.Error:  # the floor reads the database's figures within a second
            app.extensions["quotas"].warn("batch budget not settled: the budget ledger did not answer")
    return True
