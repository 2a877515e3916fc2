"""Budgets in USD: a request holds its estimated cost against its client's budget (per UTC day or month)
and the operator's monthly one before it goes upstream, and settles at its real cost once recorded.

The holds live in the token quotas' machinery (holds.QuotaHolds over ledger.LocalLedger or Redis),
counting micro-dollars instead of tokens, so concurrent requests overrun a budget by at most one
request's cost, and every worker (with Redis, every instance) sees the same spend."""
import math
import os
import sqlite3
import time
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from models import ApiClient, db

from ..requestctx import API
from ..storage.database import local_path
from ..wire import jsonbody
from ..wire.usage import Usage
from .estimate import BYTES_PER_TOKEN, UNBOUNDED, refers_to_unseen, requested_output
from .holds import QuotaHolds
from .ledger import LocalLedger
from .spend import outstanding_batches, recorded

DAY, MONTH = "day", "month"
PERIODS = (DAY, MONTH)
ADJECTIVES = {DAY: "daily", MONTH: "monthly"}
OPERATOR = 0  # the operator's budget in the month ledger: no client has id 0
MICRO = 1_000_000  # micro-dollars a dollar: the ledgers count integers
_HOLD_MAX = 2 ** 52  # micro-dollars one request holds at most: exact in Redis's Lua numbers
_PARSED_MAX_BYTES = 256 * 1024  # as quotas: a larger body is not parsed again for its output cap
_OPERATOR_FLOOR_SECONDS = 60.0
_APPLIED_MAX = 4096  # requests awaiting settlement remembered; older ones' holds expire in the ledger


def prices_of(app):
    """The app's price table (analytics' PriceTable, handed over by the app factory as extensions["price_table"])."""
    return app.extensions["price_table"](app)


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def period_start(period, now):
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == DAY else day.replace(day=1)


def period_end(period, now):
    """When the period holding `now` (naive UTC) ends: the next UTC midnight, or the first of next month."""
    start = period_start(period, now)
    if period == DAY:
        return start + timedelta(days=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def period_key(period, now):
    """The ledger's `day` column: the period's first day (each period has a ledger file of its own)."""
    return period_start(period, now).date().isoformat()


def hold_id(client_id, request_id):
    """What a request's budget holds are kept under: X-Request-ID is the client's to choose, so another
    client naming the same id must not settle (and so move its cost onto) this client's hold."""
    return f"{'-' if client_id is None else client_id}:{request_id}"


def to_micro(usd):
    """USD as whole micro-dollars, at most _HOLD_MAX: a cost past it (a price typo) stops a budget, never
    the request with an OverflowError."""
    micro = usd * MICRO - 1e-6
    return _HOLD_MAX if not math.isfinite(micro) or micro >= _HOLD_MAX else int(math.ceil(micro))


class BudgetLedgers:
    """The day and month ledgers of micro-dollars (client budgets of either period; the operator's in
    the month one), each a QuotaHolds of its own file or Redis keys."""

    def __init__(self, day, month):
        self.holds = {DAY: day, MONTH: month}
        self._applied = OrderedDict()  # request id -> [the budgets it holds against], until it settles
        self._operator_floored_at = -_OPERATOR_FLOOR_SECONDS

    def reserve(self, request_id, applied, estimate, now):
        """Hold `estimate` micro-dollars in every budget of `applied`, or none: (scope, period, budget,
        Reservation) of the first budget that refused, else None."""
        granted = []
        for scope, period, budget in applied:
            reservation = self.holds[period].reserve(scope, period_key(period, now), request_id, estimate, budget)
            if not reservation.granted:
                for held_scope, held_period, _ in granted:  # the holds already made go back at once
                    self.holds[held_period].settle(held_scope, request_id, 0)
                return scope, period, budget, reservation
            granted.append((scope, period, budget))
        if len(self._applied) >= _APPLIED_MAX:
            self._applied.popitem(last=False)
        self._applied.setdefault(request_id, []).append(granted)  # client-chosen request ids may repeat
        return None

    def floor(self, applied, now, prices, warn):
        """Spend is at least what the database recorded this period (the ledger may be new, or other
        instances may share the database): read once a second per budget and worker, as quotas do."""
        for scope, period, _ in applied:
            holds, key = self.holds[period], period_key(period, now)
            if not holds.due_for_floor(scope, key) or (scope == OPERATOR and not self._operator_floor_due()):
                continue
            try:
                whose, since = None if scope == OPERATOR else scope, period_start(period, now)
                cost = recorded(whose, since, prices)["cost_usd"]
                pending = outstanding_batches(whose, since)  # batches running: their estimates count
            except SQLAlchemyError:  # the ledger holds the budget meanwhile
                db.session.rollback()
                warn("recorded spend unread (the database did not answer): the budget ledger holds it")
                continue
            holds.floor(scope, key, to_micro(cost) + pending)

    def _operator_floor_due(self):
        """The operator's floor sums a month of every client's records: once a minute, not once a second."""
        now = time.monotonic()
        if now - self._operator_floored_at < _OPERATOR_FLOOR_SECONDS:
            return False
        self._operator_floored_at = now
        return True

    def holding(self, request_id):
        return request_id in self._applied

    def settle(self, request_id, spent):
        """The request's real cost (micro-dollars) replaces its holds; the budgets it counted against."""
        pending = self._applied.get(request_id)
        if not pending:
            return []
        applied = pending.pop(0)
        if not pending:
            del self._applied[request_id]
        for scope, period, _ in applied:
            self.holds[period].settle(scope, request_id, spent)
        return applied

    @classmethod
    def from_app(cls, app):
        url, hold_seconds = app.config["QUOTA_STORAGE_URL"], app.config["QUOTA_HOLD_SECONDS"]

        def holds(period):
            path = local_path(app, f"budget-{period}-ledger")
            if os.path.dirname(path) == app.instance_path:
                os.makedirs(app.instance_path, exist_ok=True)
            shared = None
            if url:
                from .ledger_redis import RedisLedger
                shared = RedisLedger(url, prefix=f"gemini-proxy:budget-{period}:")
            return QuotaHolds(LocalLedger(path), shared, hold_seconds)

        return cls(holds(DAY), holds(MONTH))

    def spent(self, scope, period, now):
        """Micro-dollars settled and held for `scope` (a client id, or OPERATOR) in the period of `now`."""
        return self.holds[period].used(scope, period_key(period, now))


def budgets_of(client, config):
    """[(scope, period, budget in micro-dollars)] that apply to a request of `client` (None: open proxy)."""
    applied = []
    if client is not None and getattr(client, "budget_usd", None) is not None and client.budget_period:
        applied.append((client.id, client.budget_period, to_micro(client.budget_usd)))
    if config["OPERATOR_BUDGET_USD"]:
        applied.append((OPERATOR, MONTH, to_micro(config["OPERATOR_BUDGET_USD"])))
    return applied


# -- before the request: hold its estimated cost --------------------------------------------------------------

def payload_of(body):
    try:
        return jsonbody.loads(body) if body and len(body) <= _PARSED_MAX_BYTES else None
    except jsonbody.BadJson:
        return None  # refused as a 400 further on, which settles at 0


def model_of(state, payload, app):
    """The model the request will (first) be served by: the one it names, or the chain's first."""
    named = None
    if state.area == API:
        named = payload.get("model") if isinstance(payload, dict) else None
    elif state.native is not None:
        named = state.native.route.model or (payload.get("model") if isinstance(payload, dict) else None)
    if isinstance(named, str) and named:
        return named.removeprefix("models/")
    return app.extensions["engine"].chain.models[0]


def estimate_micro(body, payload, model, prices, default_output):
    """Its input (from the body's size) at the model's input price, plus the output it allows at the output
    price, in micro-dollars (a USD-per-million price times tokens is micro-dollars)."""
    rates = prices.rates(model)
    if refers_to_unseen(body):
        return _HOLD_MAX if rates.input or rates.output else 0  # capped by what the budget has left
    input_tokens = len(body) // BYTES_PER_TOKEN + 1
    output = requested_output(payload) or default_output
    return min(_HOLD_MAX, math.ceil(input_tokens * rates.input + min(output, UNBOUNDED) * rates.output))


# -- after the request: its real cost ---------------------------------------------------------------------------

def record_usage(record):
    return Usage(prompt=record.prompt_tokens, candidates=record.completion_tokens, total=record.total_tokens,
                 cached=record.cached_tokens, thoughts=record.thoughts_tokens,
                 tool_use_prompt=record.tool_use_prompt_tokens, service_tier=record.service_tier)


def record_cost(prices, record):
    """USD a finished request's record cost; a cache hit costs nothing. The one place its price is read:
    once records store their cost (request_log.cost_usd), this returns that."""
    if record.cache_status == "HIT":
        return 0.0
    stored = getattr(record, "cost_usd", None)
    if stored is not None:
        return stored
    return prices.cost(record.model_used or record.model_requested, record_usage(record), bool(record.batch))


def count_spend(app, record):
    """An observer of each finished request's record (registered in the app factory): its real cost settles
    the holds it made, and may pass an alert's threshold. A request that held nothing is not counted."""
    ledgers = app.extensions.get("budgets")
    held = hold_id(record.client_id, record.request_id)
    if ledgers is None or not ledgers.holding(held):  # most requests: no budget applies
        return
    try:
        applied = ledgers.settle(held, to_micro(record_cost(prices_of(app), record)))
    except sqlite3.Error:  # the hold expires by itself; never fail the record over it
        app.extensions["quotas"].warn("spend not settled: the budget ledger did not answer")
        return
    if applied:
        check_alerts(app, applied, record.created_at or utcnow())


def spend_now(app, client, usage, model, now=None):
    """Count a Live turn's cost at once, with no hold; the micro-dollars left of the tightest budget after it
    (None: no budget applies)."""
    applied = budgets_of(client, app.config)
    if not applied:
        return None
    now = now or utcnow()
    cost = to_micro(prices_of(app).cost((model or "").removeprefix("models/"), usage))
    ledgers, left = app.extensions["budgets"], None
    for scope, period, budget in applied:
        holds = ledgers.holds[period]
        if cost:
            holds.spend(scope, period_key(period, now), cost)
        remaining = budget - ledgers.spent(scope, period, now)
        left = remaining if left is None else min(left, remaining)
    check_alerts(app, applied, now)
    return left


def release_holds(app, request_id, client=None):
    """Let a request's holds go (a Live session: its turns are counted as they come instead)."""
    app.extensions["budgets"].settle(hold_id(getattr(client, "id", None), request_id), 0)


def check_alerts(app, applied, now):
    alerts = app.extensions.get("budget_alerts")
    if alerts is None:
        return
    ledgers = app.extensions["budgets"]
    for scope, period, budget in applied:
        try:
            spent = ledgers.spent(scope, period, now)
        except sqlite3.Error:
            continue
        alerts.check(scope, period, period_key(period, now), spent / MICRO, budget / MICRO)


def budget_status(app, now=None):
    """(scope, period, spent USD, budget USD) of every budget: the operator's and each active key's."""
    now, ledgers, rows = now or utcnow(), app.extensions["budgets"], []
    if app.config["OPERATOR_BUDGET_USD"]:
        rows.append(("operator", MONTH, ledgers.spent(OPERATOR, MONTH, now) / MICRO, app.config["OPERATOR_BUDGET_USD"]))
    try:
        budgeted = db.session.execute(select(ApiClient.id, ApiClient.budget_usd, ApiClient.budget_period).where(
            ApiClient.budget_usd.is_not(None), ApiClient.budget_period.is_not(None),
            ApiClient.revoked_at.is_(None))).all()
    except SQLAlchemyError:
        db.session.rollback()
        return rows
    for client_id, budget_usd, period in budgeted:
        rows.append((f"client:{client_id}", period, ledgers.spent(client_id, period, now) / MICRO, budget_usd))
    return rows
