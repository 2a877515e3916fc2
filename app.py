"""The application factory; `python app.py` runs a development server."""
import inspect
import os
import time
from functools import partial

from flask import Flask

from config import ConfigError, load_settings
from proxy.access.auth import authenticate
from proxy.access.batch_budgets import settle_batch
from proxy.access.budget_alerts import BudgetAlerts
from proxy.access.budget_check import check_budget
from proxy.access.budgets import BudgetLedgers, budget_status, count_spend
from proxy.access.cli import cli as keys_cli
from proxy.access.env_keys import sync_env_keys
from proxy.access.holds import QuotaHolds
from proxy.access.keycache import KeyCache
from proxy.access.limits import init_limits
from proxy.access.quotas import check_token_quota, count_usage
from proxy.access.resources import ResourceOwners
from proxy.access.security import init_security
from proxy.analytics.cli import cli as ops_cli
from proxy.analytics.batch_usage import start_batch_poller
from proxy.analytics.costing import install as install_costing, price_table
from proxy.analytics.operations import start_periodic_prune
from proxy.analytics.rollups import forget_late_records, start_periodic_rollups, watch_late_records
from proxy.api import init_api
from proxy.api.errors import register as register_errors
from proxy.access.upload_grants import EndedUploads
from proxy.cache.cli import cli as cache_cli
from proxy.cache.service import ResponseCache
from proxy.cache.store import make_store
from proxy.dashboard import bp as dashboard_bp
from proxy.exact_paths import ExactPathMap, refuse_empty_segments
from proxy.forwarded import TrustedForwarded
from proxy.jsonrequests import BoundedJSONProvider, BoundedRequest
from proxy.live import init_live
from proxy.access.sessions import LiveSessions
from proxy.logsetup import configure_logging
from proxy.observability.prometheus import (configure_labels, count_cooldown, observe, release_in_flight,
                                            track_in_flight)
from proxy.observability.views import bp as metrics_bp
from proxy.passthrough.forwarder import Forwarder
from proxy.passthrough.views import bp as passthrough
from proxy.request_body import BodyGuard, refuse_unread_body
from proxy.requestctx import begin
from proxy.storage import admitted
from proxy.storage.database import init_database, local_path, release_connection
from proxy.storage.recorder import record
from proxy.storage.spool import Spool
from proxy.storage.writer import RecordWriter
from proxy.upstream.gemini_sdk import GeminiSdk
from proxy.upstream.chain import ModelChain
from proxy.upstream.engine import Engine
from proxy.upstream.cooldowns import make_store as cooldown_store
from proxy.upstream.keypool import KeyPool
from proxy.upstream.raw_http import HttpTransport
from proxy.upstream.session import upstream_pool
from proxy.upstream.retry import RetryPolicy
from proxy.upstream.service import GenerationService


class ProxyFlask(Flask):
    """Flask, asking once per function rather than on every request whether a hook or view is `async def`:
    Flask asks for each of the fourteen hooks and views a request passes, a twentieth of its calls.
    Request bodies are parsed with bounds (depth, no NaN), for every view and schema check alike."""

    url_map_class = ExactPathMap
    json_provider_class = BoundedJSONProvider
    request_class = BoundedRequest
    _KNOWN_MAX = 4096  # functions remembered; a bound method is remembered by its function

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._coroutine = {}

    def ensure_sync(self, func):
        key = getattr(func, "__func__", func)  # Flask-RESTX binds a new resource to every request
        coroutine = self._coroutine.get(key)
        if coroutine is None:
            if len(self._coroutine) >= self._KNOWN_MAX:
                self._coroutine.clear()
            coroutine = self._coroutine[key] = inspect.iscoroutinefunction(func)
        return super().ensure_sync(func) if coroutine else func


def create_app(config=None):
    """Build the app from the environment, or, for tests, from defaults plus `config`."""
    app = ProxyFlask(__name__, instance_relative_config=True)
    app.config.update(load_settings() if config is None else load_settings({}))
    app.config.update(config or {})
    app.config["RESTX_MASK_SWAGGER"] = False
    app.config["RESTX_ERROR_404_HELP"] = False
    configure_logging(app.config["LOG_LEVEL"], app.config["GEMINI_API_KEYS"] + app.config["API_KEYS"]
                      + [app.config["ADMIN_API_KEY"]])

    chain = ModelChain(app.config["GEMINI_MODELS"], app.config["ALLOWED_MODELS"])
    if not chain.models:
        raise ConfigError("ALLOWED_MODELS allows none of GEMINI_MODELS")
    init_database(app)
    app.extensions["spool"] = Spool(app.config["SPOOL_DIR"] or local_path(app, "spool"))
    records = RecordWriter(app, app.extensions["spool"], app.config["RECORD_GATHER_SECONDS"],
                           app.config["SPOOL_REPLAY_SECONDS"])
    app.extensions["records"] = records
    # Who watches a finished record: storage writes records and knows nothing of the features above it.
    install_costing(app)  # first: its cost is set on the record before the others see it
    records.watch_finished(observe)  # Prometheus
    records.watch_finished(partial(count_usage, app))  # the token quota's hold settles at the real usage
    records.watch_finished(partial(count_spend, app))  # and the budgets' at the real cost
    records.watch_written(forget_late_records)  # an hour rolled up already is rolled up again
    app.extensions["ended_uploads"] = EndedUploads(local_path(app, "uploads-ended"), app.config["UPLOAD_URL_SECONDS"])
    app.extensions["quotas"] = QuotaHolds.from_app(app)
    # Budgets price requests with analytics' table: handed to access here, as features do not import each other.
    app.extensions["price_table"] = price_table
    app.extensions["budgets"] = BudgetLedgers.from_app(app)
    # Analytics (batch_usage) counts a batch's usage and cannot import access: it finds this hook here.
    app.extensions["batch_settled"] = partial(settle_batch, app)
    app.extensions["budget_alerts"] = BudgetAlerts.from_app(app)
    app.extensions["budget_status"] = partial(budget_status, app)  # the Prometheus gauge reads it at scrape time
    app.extensions["resource_owners"] = ResourceOwners()
    app.extensions["live_sessions"] = LiveSessions.from_app(app)  # Redis's when QUOTA_STORAGE_URL names one
    app.extensions["key_cache"] = KeyCache(local_path(app, "clients-changed"), app.config["CLIENT_CACHE_SECONDS"])
    with app.app_context():  # even with API_KEYS empty: the clients of keys taken out of it stop
        sync_env_keys(app.config["API_KEYS"])
    app.extensions["started_at"] = time.monotonic()
    # One engine for both APIs, over one key pool: a key resting after a 429 rests for every caller.
    engine = app.extensions["engine"] = Engine(
        KeyPool(app.config["GEMINI_API_KEYS"], on_rest=count_cooldown,
                store=cooldown_store(app.config["COOLDOWN_STORAGE_URL"], local_path(app, "cooldowns")),
                refresh_seconds=app.config["COOLDOWN_REFRESH_SECONDS"]),
        chain,
        RetryPolicy.from_config(app.config),
        deadline=app.config["REQUEST_DEADLINE_SECONDS"],
        quota_cooldown=app.config["QUOTA_COOLDOWN_SECONDS"],
    )
    # One pool of connections to Gemini for both APIs (over HTTP/2, a few connections for the whole worker).
    upstream = upstream_pool(app.config["GEMINI_BASE_URL"], app.config["UPSTREAM_POOL_SIZE"],
                             http2=app.config["UPSTREAM_HTTP2"])
    app.extensions["gemini"] = GenerationService(
        engine, GeminiSdk(app.config["GEMINI_BASE_URL"], http=upstream),
        upstream_timeout=app.config["UPSTREAM_TIMEOUT_SECONDS"],
        fallback=app.config["FALLBACK_ENABLED"],
    )
    app.extensions["cache"] = ResponseCache(make_store(app.config), app.config)
    app.extensions["forwarder"] = Forwarder(
        engine,
        HttpTransport(app.config["GEMINI_BASE_URL"],
                      connect_timeout=app.config["UPSTREAM_CONNECT_TIMEOUT_SECONDS"],
                      read_timeout=app.config["UPSTREAM_TIMEOUT_SECONDS"], http=upstream),
        fallback_scope=app.config["PASSTHROUGH_FALLBACK"],
        max_attempts=app.config["PASSTHROUGH_MAX_ATTEMPTS"],
    )

    # Order matters: the request id first, then who is calling (so what follows is recorded as theirs), then
    # what cannot be served at all, then their limits.
    note_admitted, forget_on_close = admitted.hooks(app.extensions["records"].inflight)
    app.before_request(begin)
    app.before_request(authenticate)
    app.before_request(refuse_empty_segments)
    app.before_request(refuse_unread_body)
    init_limits(app)
    app.before_request(check_token_quota)
    app.before_request(check_budget)
    app.before_request(note_admitted)  # what a worker that dies mid-request leaves its survivors to record
    app.before_request(release_connection)
    app.before_request(track_in_flight)
    app.after_request(release_in_flight)
    app.after_request(forget_on_close)  # after_request hooks run last first: this one after the recorder's
    app.after_request(record)  # X-Request-ID is added to every answer by init_security's middleware
    _one_hook_each(app)  # last of the hooks: any registered later runs after these, as it would have
    init_security(app)
    register_errors(app)
    watch_late_records()
    if not app.testing:  # tests drive these jobs themselves, with their own clocks
        start_background_jobs(app)
    init_api(app, chain.models)
    app.register_blueprint(passthrough)
    init_live(app)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(keys_cli)
    app.register_blueprint(ops_cli)
    app.register_blueprint(cache_cli)
    configure_labels([*chain.listed, *chain.allowed], [rule.rule for rule in app.url_map.iter_rules()])
    app.wsgi_app = TrustedForwarded(app.wsgi_app, app.config["FORWARDED_ALLOW_IPS"])
    # Outermost: it reads every body before anything else runs, and talks to the server's start_response.
    app.wsgi_app = BodyGuard(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"], app.config["BODY_READ_SECONDS"])
    return app


def _one_hook_each(app):
    """The app's before_request hooks as one hook, and its after_request hooks as one, run in Flask's
    order: Flask looks each hook up and wraps it on every request (about 40 calls a request for fifteen)."""
    before, after = tuple(app.before_request_funcs.get(None, ())), tuple(app.after_request_funcs.get(None, ()))
    if any(inspect.iscoroutinefunction(hook) for hook in (*before, *after)):
        return  # Flask runs an `async def` hook in its own loop: left to Flask

    def before_request():
        for hook in before:
            answer = hook()
            if answer is not None:  # the request is answered here, as Flask stops at the first answer
                return answer

    def after_request(response):
        for hook in reversed(after):  # Flask runs after_request hooks last registered first
            response = hook(response)
        return response

    app.before_request_funcs[None], app.after_request_funcs[None] = [before_request], [after_request]


def start_background_jobs(app):
    """Each worker's own: the record writer always; retention and rollups when configured."""
    config = app.config
    app.extensions["records"].start()
    if config["RETENTION_INTERVAL_SECONDS"]:
        start_periodic_prune(app, config["RETENTION_INTERVAL_SECONDS"], config["RETENTION_DAYS"],
                             config["BODY_RETENTION_DAYS"])
    if config["ROLLUP_INTERVAL_SECONDS"]:
        start_periodic_rollups(app, config["ROLLUP_INTERVAL_SECONDS"])
    if config["BATCH_USAGE_INTERVAL_SECONDS"]:
        start_batch_poller(app, config["BATCH_USAGE_INTERVAL_SECONDS"])


if __name__ == "__main__":
    development = create_app()
    development.run(host=os.environ.get("HOST", "127.0.0.1"), port=development.config["PORT"], threaded=True)
