"""GET /analytics/...: usage, performance, errors, fallbacks, costs, anomalies and the request log."""
from functools import wraps

from flask import current_app, request
from flask_restx import Namespace, Resource, fields

from ..analytics import reports
from ..analytics.pricing import PriceTable
from ..analytics.window import MAX_CLIENT_ID, int_arg, parse_window
from ..errors import InvalidRequest, NotFound
from .models import UtcDateTime, document_errors, error_detail, error_model, nullable

ns = Namespace("analytics", description="Reports over every logged request (send ADMIN_API_KEY as X-API-KEY)",
               path="/analytics")
ns.add_model("ErrorDetail", error_detail)
ns.add_model("Error", error_model)

MAX_PAGE, MAX_PAGE_SIZE = 10**9, 200

# Each parameter with the type and bounds its parser (int_arg in proxy/analytics/window.py) enforces, so
# /docs and the 400s agree.
WINDOW_PARAMS = {
    "from": "Start of the window, ISO 8601 (default: 24 hours before `to`)",
    "to": "End of the window, ISO 8601 (default: now)",
    "model": "Only requests answered by this model",
    "route": "Only this route, e.g. /gemini/generate or /v1beta/models/{model}:streamGenerateContent",
    "status": {"description": "Only this HTTP status", "type": "integer", "minimum": 100, "maximum": 599},
    "client": {"description": "Only this client id", "type": "integer", "minimum": 1, "maximum": MAX_CLIENT_ID},
}
PAGE_PARAMS = {
    "page": {"description": "Page number, from 1", "type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    "page_size": {"description": "Rows per page, 1 to 200", "type": "integer", "minimum": 1,
                  "maximum": MAX_PAGE_SIZE},
    "error_code": "Only this error code",
}


def takes(params):
    """@ns.doc(params=...) for /docs, and a 400 naming any other query parameter: a misspelt filter
    (stauts=500) would otherwise report on every request, silently."""
    def decorate(method):
        @wraps(method)
        def checked(*args, **kwargs):
            unknown = sorted(set(request.args) - set(params))
            if unknown:
                raise InvalidRequest(f"Unknown query parameter {unknown[0]!r}; this report takes: "
                                     f"{', '.join(params) or 'none'}.")
            return method(*args, **kwargs)

        return ns.doc(params=params)(checked)

    return decorate


NFloat, NInt, NString = nullable(fields.Float), nullable(fields.Integer), nullable(fields.String)
NBoolean, NRaw = nullable(fields.Boolean), nullable(fields.Raw)

window_model = ns.model("Window", {
    "from": fields.String(description="Window start (UTC)"),
    "to": fields.String(description="Window end (UTC)"),
    "filters": fields.Raw(description="The filters applied"),
})
percentiles_model = ns.model("Percentiles", {
    "avg": NFloat(description="Mean"), "p50": NFloat(description="Median"),
    "p95": NFloat(description="95th percentile"), "p99": NFloat(description="99th percentile"),
    "exact": fields.Boolean(description="True when read from every request; false when hours come from "
                                        "the hourly rollups, whose histograms put percentiles within 2.2%"),
})
summary_model = ns.model("Summary", {
    "window": fields.Nested(window_model, description="The window reported on"),
    "requests": fields.Integer(description="Requests logged", example=1200),
    "successes": fields.Integer(description="Answered below 400", example=1180),
    "errors": fields.Integer(description="Answered 400 or above", example=20),
    "error_rate": fields.Float(description="errors / requests", example=0.0167),
    "prompt_tokens": fields.Integer(description="Prompt tokens", example=52000),
    "completion_tokens": fields.Integer(description="Completion tokens", example=160000),
    "total_tokens": fields.Integer(description="All tokens", example=212000),
    "latency_ms": fields.Nested(percentiles_model, description="Latency: mean and nearest-rank percentiles"),
    "cost_usd": fields.Float(description="Estimated cost from the price table", example=0.41),
    "cache": fields.Nested(ns.model("CacheSavings", {
        "lookups": fields.Integer(description="Requests that consulted the response cache"),
        "hits": fields.Integer(description="Answered from it"),
        "hit_rate": fields.Float(description="hits / lookups"),
        "tokens_saved": fields.Integer(description="Tokens Gemini did not have to produce"),
        "cost_saved_usd": fields.Float(description="What those tokens would have cost"),
    }), description="The response cache's hits and savings (tokens and cost above exclude them)"),
})
usage_row = ns.model("UsageRow", {
    "key": fields.String(description="The group: model, route, client id:name, or bucket start (UTC)"),
    "requests": fields.Integer(description="Requests"), "errors": fields.Integer(description="Errors"),
    "prompt_tokens": fields.Integer(description="Prompt tokens"),
    "completion_tokens": fields.Integer(description="Completion tokens"),
    "total_tokens": fields.Integer(description="All tokens"),
    "cost_usd": fields.Float(description="Estimated cost"),
})
usage_model = ns.model("Usage", {
    "window": fields.Nested(window_model, description="The window"),
    "group_by": fields.String(description="model, route, hour, day or client"),
    "groups": fields.List(fields.Nested(usage_row), description="One row per group; time series have no holes"),
})
p_model = ns.model("P", {"p50": NFloat(description="Median"), "p95": NFloat(description="95th"),
                         "p99": NFloat(description="99th")})
performance_row = ns.model("PerformanceRow", {
    "bucket": fields.String(description="Bucket start (UTC)"),
    "requests": fields.Integer(description="Requests in the bucket"),
    "latency_ms": fields.Nested(p_model, description="Latency percentiles"),
    "ttfb_ms": fields.Nested(p_model, description="Time to first byte (pass-through) percentiles"),
    "upstream_ms_avg": NFloat(description="Mean time spent waiting on Gemini"),
    "overhead_ms_avg": NFloat(description="Mean time the proxy added on top of Gemini"),
})
performance_model = ns.model("Performance", {
    "window": fields.Nested(window_model, description="The window"),
    "bucket": fields.String(description="hour or day"),
    "exact": fields.Boolean(description="Percentiles read from every request (true) or from the hourly "
                                        "rollups' histograms, within 2.2% (false)"),
    "series": fields.List(fields.Nested(performance_row), description="One row per bucket"),
})
brief_model = ns.model("RequestBrief", {
    "request_id": fields.String(description="Request id"), "created_at": UtcDateTime(description="When"),
    "route": fields.String(description="Route"), "method": fields.String(description="HTTP method"),
    "client_id": NInt(description="Client id"), "model_requested": NString(description="Model asked for"),
    "model_used": NString(description="Model that answered"), "status_code": fields.Integer(description="Status"),
    "error_code": NString(description="Error code"), "error_message": NString(description="Error message"),
    "latency_ms": fields.Float(description="Latency"), "ttfb_ms": NFloat(description="Time to first byte"),
    "prompt_tokens": NInt(description="Prompt tokens"), "completion_tokens": NInt(description="Completion tokens"),
    "total_tokens": NInt(description="All tokens"), "attempt_count": fields.Integer(description="Upstream calls"),
    "streamed": fields.Boolean(description="A streamed exchange"), "finish_reason": NString(description="Finish"),
    "cache_status": NString(description="HIT or MISS when the response cache was consulted"),
})
errors_model = ns.model("Errors", {
    "window": fields.Nested(window_model, description="The window"),
    "by_code": fields.List(fields.Raw, description="[{code, status, count}]"),
    "by_upstream_status": fields.List(fields.Raw, description="[{status, count}] of failed upstream attempts"),
    "latest": fields.List(fields.Nested(brief_model), description="The latest failed requests"),
})
fallbacks_model = ns.model("Fallbacks", {
    "window": fields.Nested(window_model, description="The window"),
    "requests_with_attempts": fields.Integer(description="Requests that called Gemini"),
    "first_model_failed": fields.Integer(description="Requests answered by another model than the first tried"),
    "first_model_failure_rate": fields.Float(description="first_model_failed / requests_with_attempts"),
    "fallbacks": fields.List(fields.Raw, description="[{from, to, count}]"),
    "answered_by": fields.List(fields.Raw, description="[{model, count}] of fallback answers"),
    "retried_requests": fields.Integer(description="Requests with more than one attempt"),
    "retries": fields.Integer(description="Attempts beyond the first"),
    "attempts_by_outcome": fields.Raw(description="{outcome: count}"),
    "cooldowns_now": fields.List(fields.Raw, description="Key x model pairs resting now (this worker)"),
    "model_chain": fields.List(fields.String, description="The operator's chain"),
})
costs_model = ns.model("Costs", {
    "window": fields.Nested(window_model, description="The window"),
    "total_cost_usd": fields.Float(description="Estimated cost"),
    "by_model": fields.List(fields.Raw, description="Per model: tokens, price, cost, cost at the cheapest model"),
    "by_day": fields.List(fields.Raw, description="[{day, cost_usd}], no holes"),
    "cheapest_fallback_model": NString(description="The cheapest priced model of the chain"),
    "savings_if_cheapest_usd": fields.Float(description="What serving chain models' traffic by it would save"),
})
anomalies_model = ns.model("Anomalies", {
    "window": fields.Nested(window_model, description="The window"),
    "baseline_hours": fields.Integer(description="Trailing hours each hour is compared with"),
    "threshold_sigma": fields.Float(description="How many standard deviations count as anomalous"),
    "anomalies": fields.List(fields.Raw, description="[{hour, requests, reasons: [{metric, value, z, reason}]}]"),
})
page_model = ns.model("RequestPage", {
    "window": fields.Nested(window_model, description="The window"),
    "page": fields.Integer(description="Page number, from 1"), "page_size": fields.Integer(description="Rows"),
    "total": fields.Integer(description="Matching requests"),
    "requests": fields.List(fields.Nested(brief_model), description="Newest first"),
})
attempt_model = ns.model("AttemptRecord", {
    "number": fields.Integer(description="1 for the first call"), "started_at": UtcDateTime(description="When"),
    "model": fields.String(description="Model called"), "key_id": NString(description="Key fingerprint"),
    "outcome": fields.String(description="ok, quota, transient, timeout, key_rejected, not_found, rejected"),
    "status_code": NInt(description="Upstream status"), "error_code": NString(description="Google's reason"),
    "error_message": NString(description="Google's message"), "latency_ms": fields.Float(description="Duration"),
})
exchange_model = ns.model("ExchangeRecord", {
    "path": fields.String(description="The path forwarded"),
    "query": NString(description="The query string, credentials removed"),
    "action": NString(description="generateContent, streamGenerateContent, countTokens, ..."),
    "stream_format": NString(description="sse or json for a stream"),
    "key_source": NString(description="client (the caller's own Gemini key) or server (the pool's)"),
    "upstream_status": NInt(description="Gemini's status"),
    "aborted": NString(description="client or upstream, when the stream was cut short"),
    "request_headers": NRaw(description="Request headers, secrets redacted"),
    "response_headers": NRaw(description="Gemini's response headers"),
    "request_bytes": NInt(description="Request body size"), "response_bytes": NInt(description="Response size"),
    "request_body": NString(description="The request body, where bodies are logged (LOG_BODIES)"),
    "response_body": NString(description="The response body, where bodies are logged"),
    "request_truncated": NBoolean(description="Whether the kept request body was cut at LOG_BODY_MAX_BYTES"),
    "response_truncated": NBoolean(description="Whether the kept response body was cut"),
})
detail_model = ns.inherit("RequestDetail", brief_model, {
    "upstream_latency_ms": NFloat(description="Time spent on upstream calls"),
    "temperature": NFloat(description="Temperature asked for"), "max_output_tokens": NInt(description="Cap"),
    "token_source": NString(description="usage_metadata, count_tokens or estimate"),
    "attempts": fields.List(fields.Nested(attempt_model), description="Every upstream call"),
    "exchange": nullable(fields.Nested)(exchange_model, allow_null=True,
                                        description="The native pass-through's exchange; null for the "
                                                    "proxy's own APIs"),
})


def _window():
    return parse_window(request.args)


def _prices():
    return PriceTable(current_app.config["MODEL_PRICES"])


def _service():
    return current_app.extensions["gemini"]


def _choice(name, allowed, default):
    value = request.args.get(name, default)
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of: {', '.join(allowed)}.")
    return value


@ns.route("/summary")
class Summary(Resource):
    @takes(WINDOW_PARAMS)
    @ns.marshal_with(summary_model, description="Totals for the window")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Requests, errors, tokens, latency percentiles and cost."""
        return reports.summary(_window(), _prices())


@ns.route("/usage")
class Usage(Resource):
    @takes({**WINDOW_PARAMS, "group_by": {"description": "model, route, hour, day or client",
                                          "enum": ["model", "route", "hour", "day", "client"]}})
    @ns.marshal_with(usage_model, description="Usage per group")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Usage grouped by model, route, hour, day or client."""
        return reports.usage(_window(), _choice("group_by", ("model", "route", "hour", "day", "client"), "model"),
                             _prices())


@ns.route("/performance")
class Performance(Resource):
    @takes({**WINDOW_PARAMS, "bucket": {"description": "hour or day", "enum": ["hour", "day"]}})
    @ns.marshal_with(performance_model, description="Latency over time")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Latency and time-to-first-byte percentiles over time; upstream time against proxy overhead."""
        return reports.performance(_window(), _choice("bucket", ("hour", "day"), "hour"))


@ns.route("/errors")
class Errors(Resource):
    @takes(WINDOW_PARAMS)
    @ns.marshal_with(errors_model, description="Errors by code and by upstream status")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Errors by code and upstream status, with the latest examples."""
        return reports.errors(_window())


@ns.route("/fallbacks")
class Fallbacks(Resource):
    @takes(WINDOW_PARAMS)
    @ns.marshal_with(fallbacks_model, description="Fallback and retry activity")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """How often the first model failed, who answered instead, retries spent, cool-downs now."""
        return reports.fallbacks(_window(), _service().pool, _service().models)


@ns.route("/costs")
class Costs(Resource):
    @takes(WINDOW_PARAMS)
    @ns.marshal_with(costs_model, description="Cost per model and day, and savings")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Estimated cost per model and per day, and what the cheapest chain model would have saved."""
        return reports.costs(_window(), _prices(), _service().models)


@ns.route("/anomalies")
class Anomalies(Resource):
    @takes(WINDOW_PARAMS)
    @ns.marshal_with(anomalies_model, description="Hours far outside their trailing baseline")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Hours whose volume, error rate, latency or tokens stand far outside the trailing 24 hours."""
        return reports.anomalies(_window())


@ns.route("/requests")
class Requests(Resource):
    @takes({**WINDOW_PARAMS, **PAGE_PARAMS})
    @ns.marshal_with(page_model, description="A page of the request log")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """The request log, newest first, filterable and paged."""
        page = int_arg(request.args, "page", 1, MAX_PAGE, default=1)
        size = int_arg(request.args, "page_size", 1, MAX_PAGE_SIZE, default=50)
        return reports.request_page(_window(), page, size, request.args.get("error_code") or None)


@ns.route("/requests/<string:request_id>")
class RequestDetail(Resource):
    @takes({})
    @ns.marshal_with(detail_model, description="One request in full")
    @document_errors(ns, 401, 403, 404)
    def get(self, request_id):
        """One request in full: its attempts, and for the pass-through its headers and bodies."""
        detail = reports.request_detail(request_id)
        if detail is None:
            raise NotFound(f"No request {request_id!r} in the log.")
        return detail

