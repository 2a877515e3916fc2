"""The analytics namespace's documented shapes: every report's answer, field by field."""
from flask_restx import Namespace, fields

from .schemas import UtcDateTime, error_detail, error_model, nullable

ns = Namespace("analytics", description="Reports over every logged request (send ADMIN_API_KEY as X-API-KEY)",
               path="/analytics")
ns.add_model("ErrorDetail", error_detail)
ns.add_model("Error", error_model)

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
    "cost_usd": fields.Float(description="Cost: each request's, stored when it was recorded (rows recorded "
                                         "before costs were stored: at today's prices)", example=0.41),
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
    "cost_usd": fields.Float(description="Cost of Gemini's work (the cache's answers cost nothing), as stored "
                                         "with each request"),
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
price_table_model = ns.model("PriceTableInUse", {
    "source": fields.String(description="The built-in table's source and date", example="default:2026-12-03"),
    "overridden": fields.List(fields.String, description="Models MODEL_PRICES prices"),
})
costs_model = ns.model("Costs", {
    "window": fields.Nested(window_model, description="The window"),
    "price_table": fields.Nested(price_table_model, description="The prices in force now"),
    "total_cost_usd": fields.Float(description="Cost: the sum of the costs stored with each request"),
    "by_model": fields.List(fields.Raw, description=(
        "Per model: requests, batch_requests, tokens by kind, cost_usd; price_now {source, input, output, "
        "cached, long_input/long_output/long_cached when priced above 200k prompt tokens, batch, flex, "
        "priority: USD per million tokens, and shares of the list price}; prices_used [{source, per_million, "
        "requests, cost_usd, at_read_time}]: each price its costs were computed at (source default:<date>, "
        "MODEL_PRICES, unpriced), read from the request log's rows; costed_at_read_time: requests recorded "
        "before costs were stored, costed at today's price; price_per_million {input, output, cached} (today's); "
        "priced; cost_at_cheapest_usd")),
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
forecast_tokens = ns.model("ForecastTokens", {
    "so_far": fields.Integer(description="Used since the period began", example=120000),
    "expected": fields.Integer(description="Projected total at the period's end", example=310000),
    "low": fields.Integer(description="Low end of the 95% interval", example=280000),
    "high": fields.Integer(description="High end of the 95% interval", example=340000),
})
forecast_cost = ns.model("ForecastCost", {
    "so_far": fields.Float(description="Spent since the period began", example=0.84),
    "expected": fields.Float(description="Projected total at the period's end", example=2.17),
    "low": fields.Float(description="Low end of the 95% interval", example=1.96),
    "high": fields.Float(description="High end of the 95% interval", example=2.38),
})
forecast_figure = ns.model("ForecastFigure", {
    "tokens": fields.Nested(forecast_tokens, description="Tokens (total_tokens of Gemini's work)"),
    "cost_usd": fields.Nested(forecast_cost, description="Cost from the price table"),
    "ends_at": fields.String(description="The period's end (UTC midnight)", example="2026-12-04T00:00:00+00:00"),
})
forecast_pair = ns.model("ForecastPeriods", {
    "day": fields.Nested(forecast_figure, description="To the end of the UTC day"),
    "month": fields.Nested(forecast_figure, description="To the end of the UTC month"),
})
forecast_budget = ns.model("ForecastBudget", {
    "usd": fields.Float(description="The client's budget", example=25.0),
    "period": fields.String(description="day or month", enum=["day", "month"]),
    "spent_usd": fields.Float(description="Spent this period so far"),
    "runs_out_at": NString(description="When spend is expected to reach the budget; null if not this period"),
})
forecast_quota = ns.model("ForecastQuota", {
    "daily_tokens": fields.Integer(description="The client's daily token quota (its own or DAILY_TOKEN_QUOTA)"),
    "used": fields.Integer(description="Tokens used today (UTC)"),
    "runs_out_at": NString(description="When today's tokens are expected to reach the quota; null if not today"),
})
forecast_client = ns.inherit("ForecastClient", forecast_pair, {
    "client_id": fields.Integer(description="Client id"),
    "name": fields.String(description="Client name"),
    "history_days": fields.Integer(description="Complete days of this client's history the fit used"),
    "seasonality": fields.String(description="weekly or none, for this client", enum=["weekly", "none"]),
    "budget": nullable(fields.Nested)(forecast_budget, allow_null=True,
                                      description="The client's budget; null when it has none"),
    "quota": nullable(fields.Nested)(forecast_quota, allow_null=True,
                                     description="The client's daily token quota; null when unlimited"),
})
forecast_model = ns.model("Forecast", {
    "generated_at": fields.String(description="When the forecast was made (UTC)"),
    "days": fields.Integer(description="Trailing complete days asked for"),
    "history_days": fields.Integer(description="Complete days with history the fit used (from the first day "
                                               "with usage, at most `days`)"),
    "seasonality": fields.String(description="weekly when there are at least 14 days of history, else none",
                                 enum=["weekly", "none"]),
    "weekly_index": nullable(fields.List)(fields.Float, description="Monday-first weekday factors (average 1); null "
                                                          "without weekly seasonality"),
    "total": fields.Nested(forecast_pair, description="Every request's usage, fitted as one series"),
    "clients": fields.List(fields.Nested(forecast_client), description="Per client, by id"),
})
