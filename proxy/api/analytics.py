"""GET /analytics/...: usage, performance, errors, fallbacks, costs, anomalies and the request log."""
import re
from functools import wraps

from flask import current_app, request
from flask_restx import Resource

from ..analytics import anomalies, forecast, reports, requestlog
from ..analytics.costing import price_table
from ..analytics.window import MAX_CLIENT_ID, int_arg, parse_window
from ..errors import InvalidRequest, NotFound
from .analytics_schemas import (
    anomalies_model, costs_model, detail_model, errors_model, fallbacks_model, forecast_model, ns, page_model,
    performance_model,
    summary_model, usage_model,
)
from .schemas import document_errors

MAX_PAGE, MAX_PAGE_SIZE = 10**9, 200
ERROR_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # the proxy's codes and Gemini's statuses fit (64: the column)

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
    "error_code": {"description": "Only this error code, e.g. UPSTREAM_ERROR", "type": "string",
                   "pattern": ERROR_CODE_PATTERN.pattern, "maxLength": 64},
    "outcome": {"description": "ok (status below 400) or error (400 and up)", "enum": list(requestlog.OUTCOMES)},
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


def _window():
    return parse_window(request.args)


def _prices():
    return price_table(current_app)


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
        """Cost per model and per day as stored with each request, the prices used, and what the cheapest
        chain model would have saved."""
        return reports.costs(_window(), _prices(), _service().models)


@ns.route("/anomalies")
class Anomalies(Resource):
    @takes(WINDOW_PARAMS)
    @ns.marshal_with(anomalies_model, description="Hours far outside their trailing baseline")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Hours whose volume, error rate, latency or tokens stand far outside the trailing 24 hours."""
        return anomalies.anomalies(_window())


@ns.route("/forecast")
class Forecast(Resource):
    @takes({"days": {"description": f"Trailing complete UTC days to fit, 1 to {forecast.MAX_DAYS}",
                     "type": "integer", "minimum": 1, "maximum": forecast.MAX_DAYS,
                     "default": forecast.DEFAULT_DAYS}})
    @ns.marshal_with(forecast_model, description="Projected tokens and cost, and when budgets and quotas run out")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Tokens and cost projected to the end of the UTC day and month, per client and in total, with 95%
        intervals; when each budget and daily token quota runs out.

        A least-squares trend on the trailing days' totals, times a weekly index once there are 14 days of
        history; the rest of today follows the trailing hourly profile.
        """
        days = int_arg(request.args, "days", 1, forecast.MAX_DAYS, default=forecast.DEFAULT_DAYS)
        return forecast.forecast(_prices(), days, current_app.config["DAILY_TOKEN_QUOTA"])


@ns.route("/requests")
class Requests(Resource):
    @takes({**WINDOW_PARAMS, **PAGE_PARAMS})
    @ns.marshal_with(page_model, description="A page of the request log")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """The request log, newest first, filterable and paged."""
        page = int_arg(request.args, "page", 1, MAX_PAGE, default=1)
        size = int_arg(request.args, "page_size", 1, MAX_PAGE_SIZE, default=50)
        error_code = request.args.get("error_code")  # empty is refused, as /docs' pattern says
        if error_code is not None and not ERROR_CODE_PATTERN.fullmatch(error_code):
            raise InvalidRequest(f"error_code={error_code[:80]!r} is not an error code such as UPSTREAM_ERROR.")
        outcome = _choice("outcome", requestlog.OUTCOMES, None) if "outcome" in request.args else None
        return requestlog.request_page(_window(), page, size, error_code, outcome)


@ns.route("/requests/<string:request_id>")
class RequestDetail(Resource):
    @takes({})
    @ns.marshal_with(detail_model, description="One request in full")
    @document_errors(ns, 401, 403, 404)
    def get(self, request_id):
        """One request in full: its attempts, and for the pass-through its headers and bodies."""
        detail = requestlog.request_detail(request_id)
        if detail is None:
            raise NotFound(f"No request {request_id!r} in the log.")
        return detail

