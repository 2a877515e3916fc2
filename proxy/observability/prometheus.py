"""Prometheus metrics; with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py does) they sum over workers."""
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from ..requestctx import current as current_state
from ..wire.routes import GENERATION_ACTIONS, VERSIONS
from . import series
from .labels import BoundedLabel

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)

REQUESTS = Counter("gemini_proxy_requests_total", "Requests served", ["route", "model", "status"])
LATENCY = Histogram("gemini_proxy_request_duration_seconds", "Time to serve a request", ["route"],
                    buckets=_LATENCY_BUCKETS)
UPSTREAM_LATENCY = Histogram("gemini_proxy_upstream_duration_seconds", "Time spent in upstream calls per request",
                             ["model"], buckets=_LATENCY_BUCKETS)
TOKENS = Counter("gemini_proxy_tokens_total", "Tokens Gemini processed", ["model", "kind"])
ATTEMPTS = Counter("gemini_proxy_upstream_attempts_total", "Upstream calls by outcome", ["model", "outcome"])
RETRIES = Counter("gemini_proxy_retries_total", "Upstream calls beyond a request's first", ["route"])
FALLBACKS = Counter("gemini_proxy_fallbacks_total", "Requests answered by another model than the first tried",
                    ["from_model", "to_model"])
COOLDOWNS = Counter("gemini_proxy_cooldowns_total", "Key x model pairs put to rest", ["model", "reason"])
CACHE = Counter("gemini_proxy_cache_lookups_total", "Response cache lookups", ["result"])
IN_FLIGHT = Gauge("gemini_proxy_in_flight_requests", "Requests being served now", multiprocess_mode="livesum")


# Models and routes come from clients (a path, a body): bounded, so invented names cannot grow every scrape.
_models = BoundedLabel()
_routes = BoundedLabel()
_NATIVE_ACTIONS = GENERATION_ACTIONS | {"countTokens", "embedContent", "batchEmbedContents"}


def configure_labels(models, routes):
    """The model and route labels every worker knows from the start: the configured models, the app's own
    routes and Gemini's usual ones; others are learned from answers (labels.MAX_LEARNED), or are `other`."""
    global _models, _routes
    native = [f"/{version}/models/{{model}}:{action}" for version in VERSIONS for action in _NATIVE_ACTIONS]
    _models, _routes = BoundedLabel(models), BoundedLabel([*routes, *native])


# The labelled series already made, by metric and label values. prometheus_client keeps every series for
# the life of the process anyway; finding one here skips the validation and locking of .labels().
_series = {}


def _series_of(metric, *values):
    series = _series.get((metric, values))
    if series is None:
        series = _series[(metric, values)] = metric.labels(*values)
    return series


# What series.add writes for each series, found the first time it is counted.
_slots = {}


def _counter(metric, *values):
    slot = _slots.get((metric, values))
    if slot is None:
        slot = _slots[(metric, values)] = series.counter(_series_of(metric, *values))
    return slot


def _histogram(metric, *values):
    slot = _slots.get((metric, values))
    if slot is None:
        slot = _slots[(metric, values)] = series.histogram(_series_of(metric, *values))
    return slot


def observe(record):
    """An observer of each finished request's record (storage.records.RequestRecord, registered in the app
    factory): count it, every value in one go."""
    answered = (record.status_code or 500) < 400  # upstream (or the cache, which keeps only upstream's) answered
    attempts = record.attempts
    attempt_models = [_models(a.model, learn=a.outcome == "ok") for a in attempts]
    route, model = _routes(record.route, learn=answered), _models(record.model_used, learn=answered)
    adds = [(_counter(REQUESTS, route, model, str(record.status_code)), 1)]
    series.observation(_histogram(LATENCY, route), (record.latency_ms or 0) / 1000, adds)
    cache_status = record.cache_status
    if cache_status:
        adds.append((_counter(CACHE, cache_status.lower()), 1))
    if attempts:
        series.observation(_histogram(UPSTREAM_LATENCY, model), sum(a.latency_ms for a in attempts) / 1000, adds)
        for attempt, attempt_model in zip(attempts, attempt_models):
            adds.append((_counter(ATTEMPTS, attempt_model, attempt.outcome), 1))
        if len(attempts) > 1:
            adds.append((_counter(RETRIES, route), len(attempts) - 1))
        if record.model_used and attempts[0].model != record.model_used:
            adds.append((_counter(FALLBACKS, attempt_models[0], model), 1))
        if cache_status != "HIT":
            adds.append((_counter(TOKENS, model, "prompt"), record.prompt_tokens or 0))
            adds.append((_counter(TOKENS, model, "completion"), record.completion_tokens or 0))
    series.add(adds)


class SpoolCollector:
    """Records the database has not taken yet, counted at scrape time: every worker's spool files are in
    one folder, so whichever worker answers counts them all. What to alert on when the database refuses
    records."""

    def __init__(self, writer):
        self.writer = writer

    def collect(self):
        status = self.writer.status()
        family = GaugeMetricFamily("gemini_proxy_spool_records", "Request records not yet in the database: "
                                   "waiting (every worker's), stuck (of those, waiting longer than two replay "
                                   "intervals), rejected (refused as invalid, kept apart)", labels=["state"])
        for state, key in (("waiting", "depth"), ("stuck", "stuck"), ("rejected", "rejected")):
            family.add_metric([state], status[key])
        yield family


class BudgetCollector:
    """Spend against every budget, read at scrape time from the budget ledger every worker shares (so the
    same whichever worker answers, and not summed). `status()` gives (scope, period, spent USD, budget USD)
    rows: scope is `operator` or `client:<id>`."""

    def __init__(self, status):
        self.status = status

    def collect(self):
        labels = ["scope", "period"]
        spent = GaugeMetricFamily("gemini_proxy_budget_spent_usd", "Spent (and held by requests in flight) this "
                                  "budget period, USD", labels=labels)
        budget = GaugeMetricFamily("gemini_proxy_budget_usd", "The budget for the period, USD", labels=labels)
        ratio = GaugeMetricFamily("gemini_proxy_budget_spent_ratio", "Spent over budget (1 is all of it)",
                                  labels=labels)
        for scope, period, spent_usd, budget_usd in self.status():
            spent.add_metric([scope, period], spent_usd)
            budget.add_metric([scope, period], budget_usd)
            ratio.add_metric([scope, period], spent_usd / budget_usd if budget_usd else float(spent_usd > 0))
        yield from (spent, budget, ratio)


def exposition(spool=None, budgets=None):
    """The text format, summed over every worker when running multi-process, with the `spool` and `budgets`
    collectors' gauges (the same in every worker, so not summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    body = generate_latest(registry)
    own = [collector for collector in (spool, budgets) if collector is not None]
    if own:
        registry = CollectorRegistry()
        for collector in own:
            registry.register(collector)
        body += generate_latest(registry)
    return body, CONTENT_TYPE_LATEST


def count_cooldown(model, reason):
    _series_of(COOLDOWNS, _models(model), reason).inc()


_ARRIVED, _LEFT = [(series.counter(IN_FLIGHT), 1)], [(series.counter(IN_FLIGHT), -1)]


def track_in_flight():
    """before_request: count generation requests in flight until their response closes."""
    state = current_state()
    if state.recorded_area:
        series.add(_ARRIVED)
        state.in_flight = True


def _left():
    series.add(_LEFT)


def release_in_flight(response):
    if current_state().in_flight:
        response.call_on_close(_left)  # after a stream's last byte, not when its headers leave
    return response
