"""GET /analytics/forecast checked against synthetic history with a known trend and weekly pattern, against
steady usage whose budget and quota run out at a computable moment, and against bad input."""
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from models import ApiClient, RequestLog, db
from proxy.analytics import forecast, forecast_fit, rollups, synthetic
from proxy.analytics.pricing import PriceTable

NOW = datetime(2026, 3, 18, 10, 30)  # a Wednesday, mid-month, mid-morning (naive UTC)
DAY_END, MONTH_END = datetime(2026, 3, 19), datetime(2026, 4, 1)
ROWS, DAYS, TREND = 12_000, 35, 0.02
PRICES = PriceTable()


@pytest.fixture
def patterned(admin_app):
    """35 days of history growing 2% a day, with quiet weekends, shared by two clients, ending at NOW."""
    with admin_app.app_context():
        synthetic.seed(ROWS, DAYS, 7, end=NOW, trend=TREND, weekly=True, clients=2)
    return synthetic.Pattern(NOW, DAYS, TREND, weekly=True)


def _truth(pattern, so_far, end, measure):
    remaining = pattern.expected(ROWS, NOW, end, PRICES)[measure]
    return so_far + remaining, remaining


def test_forecast_finds_the_known_trend_and_week_within_its_interval(admin_app, patterned):
    with admin_app.app_context():
        answer = forecast.forecast(PRICES, 28, now=NOW)
        month_start = datetime(2026, 3, 1)
        recorded = db.session.execute(select(func.sum(RequestLog.total_tokens)).where(
            RequestLog.created_at >= month_start, RequestLog.created_at < NOW)).scalar_one()
    assert answer["seasonality"] == "weekly" and answer["history_days"] == 28
    assert answer["total"]["month"]["tokens"]["so_far"] == recorded
    for period, end, tolerance in (("day", DAY_END, 0.10), ("month", MONTH_END, 0.05)):
        for name, measure in (("tokens", "tokens"), ("cost_usd", "cost_usd")):
            figure = answer["total"][period][name]
            truth, remaining = _truth(patterned, figure["so_far"], end, measure)
            assert figure["expected"] - figure["so_far"] == pytest.approx(remaining, rel=tolerance), (period, name)
            assert figure["low"] <= truth <= figure["high"], (period, name)
            assert figure["low"] < figure["expected"] < figure["high"]
    # Weekends are quiet in the pattern (a third of a working day's traffic), and the index says so.
    week = answer["weekly_index"]
    assert min(week[:5]) > 1.0 and max(week[5:]) < 0.6 and sum(week) == pytest.approx(7, abs=0.01)
    # Clients share the traffic 2:1; each is fitted on its own, and together they come to the total.
    clients = answer["clients"]
    assert [c["name"] for c in clients] == ["synthetic-1", "synthetic-2"]
    together = sum(c["month"]["tokens"]["expected"] for c in clients)
    assert together == pytest.approx(answer["total"]["month"]["tokens"]["expected"], rel=0.02)
    assert clients[0]["month"]["tokens"]["expected"] > 1.5 * clients[1]["month"]["tokens"]["expected"]


def test_settled_hours_read_from_rollups_forecast_as_raw_rows_do(admin_app, patterned):
    with admin_app.app_context():
        raw = forecast.forecast(PRICES, 28, now=NOW)
        assert rollups.roll_up(now=NOW) > 24 * 28
        assert forecast.forecast(PRICES, 28, now=NOW) == raw


def test_weekly_seasonality_needs_two_weeks_of_history(admin_app, patterned):
    with admin_app.app_context():
        short = forecast.forecast(PRICES, 13, now=NOW)
        enough = forecast.forecast(PRICES, 14, now=NOW)
    assert (short["seasonality"], short["weekly_index"], short["history_days"]) == ("none", None, 13)
    assert enough["seasonality"] == "weekly" and enough["history_days"] == 14
    assert {c["seasonality"] for c in short["clients"]} == {"none"}


def test_a_young_installation_has_only_the_days_it_has(admin_app):
    with admin_app.app_context():
        synthetic.seed(3000, 10, 3, end=NOW, weekly=True)
        answer = forecast.forecast(PRICES, 28, now=NOW)
    assert answer["history_days"] == 10 and answer["seasonality"] == "none"
    assert answer["total"]["day"]["tokens"]["expected"] > answer["total"]["day"]["tokens"]["so_far"] > 0


# Steady usage: one request an hour of 1,000 tokens, so every figure can be worked out by hand. ----------------
PER_REQUEST_USD = (600 * 0.30 + 400 * 2.50) / 1_000_000  # gemini-2.5-flash's list prices


@pytest.fixture
def steady(admin_app):
    """A client with one request at the top of every hour for 28 days and today until 10:00 (11 today), a
    second client with none, and a cache hit that costs nothing."""
    with admin_app.app_context():
        busy = ApiClient(name="steady", key_hash="1" * 64, key_prefix="gp_s", daily_token_quota=18_000)
        idle = ApiClient(name="idle", key_hash="2" * 64, key_prefix="gp_i")
        db.session.add_all([busy, idle])
        db.session.flush()
        start = NOW.replace(hour=0, minute=0) - timedelta(days=28)
        rows, moment = [], start
        while moment < NOW:
            rows.append(_request(len(rows), moment, busy.id))
            moment += timedelta(hours=1)
        rows.append(_request(len(rows), NOW - timedelta(minutes=5), busy.id, cache_status="HIT", tokens=10**6))
        db.session.add_all(rows)
        db.session.commit()
        return SimpleNamespace(busy=busy.id, idle=idle.id)


def _request(number, moment, client_id, cache_status=None, tokens=1000):
    return RequestLog(request_id=f"steady-{number}", created_at=moment, route="/gemini/generate",
                      model_used="gemini-2.5-flash", status_code=200, latency_ms=100.0, attempt_count=1,
                      prompt_tokens=tokens * 6 // 10, completion_tokens=tokens * 4 // 10, total_tokens=tokens,
                      client_id=client_id, cache_status=cache_status)


def _near(stamp, moment):
    """An ISO time from the forecast within a second of `moment` (naive UTC): it interpolates in floats."""
    return abs((datetime.fromisoformat(stamp).replace(tzinfo=None) - moment).total_seconds()) < 1


def _with_budget(app, client_id, usd, period):
    """The client as the budgets change will have it (budget_usd, budget_period), whether or not it is merged."""
    with app.app_context():
        row = db.session.get(ApiClient, client_id)
        return SimpleNamespace(id=row.id, name=row.name, daily_token_quota=row.daily_token_quota,
                               budget_usd=usd, budget_period=period)


def test_steady_usage_projects_exactly(admin_app, steady):
    with admin_app.app_context():
        answer = forecast.forecast(PRICES, 28, now=NOW)
    busy, idle = answer["clients"]
    # 11 requests today; the rest of 10:00's hour and 13 more hours to come, at 1,000 tokens an hour.
    assert busy["day"]["tokens"] == {"so_far": 11_000, "expected": 24_500, "low": 24_500, "high": 24_500}
    march_so_far = (17 * 24 + 11) * 1000
    assert busy["month"]["tokens"]["so_far"] == march_so_far
    assert busy["month"]["tokens"]["expected"] == march_so_far + 13_500 + 13 * 24_000
    assert busy["month"]["cost_usd"]["expected"] == pytest.approx((march_so_far + 13_500 + 13 * 24_000) / 1000
                                                                  * PER_REQUEST_USD, abs=1e-6)
    assert answer["total"]["day"]["tokens"]["expected"] == 24_500  # the cache hit cost Gemini nothing
    assert idle["day"]["tokens"] == {"so_far": 0, "expected": 0, "low": 0, "high": 0}
    assert idle["history_days"] == 0 and idle["quota"] is None and idle["budget"] is None


def test_the_daily_token_quota_runs_out_when_the_hours_say(admin_app, steady):
    with admin_app.app_context():
        busy = forecast.forecast(PRICES, 28, now=NOW)["clients"][0]
        # 11,000 used; 500 by 11:00, then 1,000 an hour: 18,000 at 17:30.
        assert (busy["quota"]["daily_tokens"], busy["quota"]["used"]) == (18_000, 11_000)
        assert _near(busy["quota"]["runs_out_at"], datetime(2026, 3, 18, 17, 30))
        db.session.get(ApiClient, steady.busy).daily_token_quota = 30_000
        db.session.commit()
        assert forecast.forecast(PRICES, 28, now=NOW)["clients"][0]["quota"]["runs_out_at"] is None
        db.session.get(ApiClient, steady.busy).daily_token_quota = None  # the operator's default applies
        db.session.commit()
        default = forecast.forecast(PRICES, 28, default_quota=20_000, now=NOW)["clients"][0]["quota"]
    assert default["daily_tokens"] == 20_000 and _near(default["runs_out_at"], datetime(2026, 3, 18, 19, 30))


@pytest.mark.parametrize("usd,period,expected_day", [
    (0.58, "month", "2026-03-21"), (0.02, "day", "2026-03-18"), (1.00, "day", None), (100.0, "month", None)])
def test_a_budget_runs_out_on_the_day_the_steady_spend_reaches_it(admin_app, steady, usd, period, expected_day):
    client = _with_budget(admin_app, steady.busy, usd, period)
    with admin_app.app_context():
        budget = forecast.forecast(PRICES, 28, now=NOW, clients=[client])["clients"][0]["budget"]
    period_start = NOW.replace(hour=0, minute=0) if period == "day" else datetime(2026, 3, 1)
    spent = ((NOW - period_start).days * 24 + 11) * PER_REQUEST_USD
    assert budget["usd"] == usd and budget["period"] == period
    assert budget["spent_usd"] == pytest.approx(spent, abs=1e-6)
    if expected_day is None:
        assert budget["runs_out_at"] is None
        return
    # From 10:30 on, spend runs at one request's cost an hour.
    moment = NOW + timedelta(hours=(usd - spent) / PER_REQUEST_USD)
    found = datetime.fromisoformat(budget["runs_out_at"]).replace(tzinfo=None)
    assert found.date().isoformat() == expected_day
    assert abs((found - moment).total_seconds()) < 1


def test_a_spent_budget_ran_out_in_the_hour_it_was_passed(admin_app, steady):
    client = _with_budget(admin_app, steady.busy, 3.5 * PER_REQUEST_USD, "day")
    with admin_app.app_context():
        budget = forecast.forecast(PRICES, 28, now=NOW, clients=[client])["clients"][0]["budget"]
    assert _near(budget["runs_out_at"], datetime(2026, 3, 18, 3, 30))  # the 4th request, at 03:00, crossed it


# The fit itself ----------------------------------------------------------------------------------------------
def test_the_fit_recovers_an_exact_trend_and_week():
    week = (1.2, 1.2, 1.1, 1.1, 1.0, 0.7, 0.7)
    scale = sum(week) / 7
    daily = [(100 + 5 * t) * week[(2 + t) % 7] for t in range(28)]  # the first day a Wednesday
    fitted = forecast_fit.fit(daily, weekday0=2)
    assert fitted.weekly and fitted.slope * scale == pytest.approx(5, rel=0.01)
    assert fitted.index == pytest.approx([w / scale for w in week], rel=0.01)
    assert fitted.expected(30) == pytest.approx((100 + 5 * 30) * week[(2 + 30) % 7], rel=0.01)
    flat = forecast_fit.fit(daily[:13], weekday0=2)
    assert not flat.weekly and flat.sigma > 0


def test_the_t_quantile_is_students():
    for df, value in ((3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert forecast_fit.t_quantile(df) == pytest.approx(value, rel=0.01)


# The resource --------------------------------------------------------------------------------------------------
def test_an_empty_database_forecasts_zeros(admin_client):
    body = admin_client.get("/analytics/forecast").json
    assert body["history_days"] == 0 and body["days"] == 28 and body["seasonality"] == "none"
    zeros = {"so_far": 0, "expected": 0, "low": 0, "high": 0}
    for period in ("day", "month"):
        assert body["total"][period]["tokens"] == zeros
        assert body["total"][period]["cost_usd"] == zeros
    assert body["clients"] == [] and body["weekly_index"] is None


def test_the_resource_answers_the_shared_shape(admin_app, admin_client, steady):
    body = admin_client.get("/analytics/forecast", query_string={"days": "14"}).json
    assert {"generated_at", "history_days", "seasonality", "total", "clients"} <= set(body)
    busy = body["clients"][0]
    assert {"client_id", "name", "day", "month", "budget", "quota"} <= set(busy)
    assert set(busy["day"]) == {"tokens", "cost_usd", "ends_at"}
    assert set(busy["quota"]) == {"daily_tokens", "used", "runs_out_at"}
    # The steady history lies in March 2026, before this run's trailing 14 days: nothing is used today.
    assert busy["client_id"] == steady.busy and busy["quota"]["daily_tokens"] == 18_000 and body["days"] == 14


@pytest.mark.parametrize("query", [{"days": "0"}, {"days": "366"}, {"days": "two"}, {"days": ""},
                                   {"days": "1.5"}, {"dayz": "7"}])
def test_bad_parameters_are_400s(admin_client, query):
    response = admin_client.get("/analytics/forecast", query_string=query)
    assert response.status_code == 400 and response.json["error"]["code"] == "INVALID_REQUEST"


def test_the_forecast_is_for_the_operator(admin_app):
    assert admin_app.test_client().get("/analytics/forecast").status_code == 401


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.text(max_size=12))
def test_any_days_value_is_a_forecast_or_a_400(admin_client, days):
    response = admin_client.get("/analytics/forecast", query_string={"days": days})
    assert response.status_code in (200, 400)
    assert response.status_code == 400 or response.json["days"] == int(days)


def test_docs_describe_the_forecast(admin_client):
    spec = admin_client.get("/swagger.json").json
    operation = spec["paths"]["/analytics/forecast"]["get"]
    assert operation["summary"] and {"200", "400", "401"} <= set(operation["responses"])
    assert [(p["name"], p["minimum"], p["maximum"]) for p in operation["parameters"]] == [("days", 1, 365)]
    assert {"ForecastFigure", "ForecastClient", "ForecastBudget", "ForecastQuota"} <= set(spec["definitions"])


def test_ops_seed_makes_a_known_pattern(admin_app):
    runner = admin_app.test_cli_runner()
    result = runner.invoke(args=["ops", "seed", "--rows", "600", "--days", "15", "--trend", "0.02", "--weekly",
                                 "--clients", "2"])
    assert result.exit_code == 0, result.output
    with admin_app.app_context():
        counts = dict(db.session.execute(select(ApiClient.name, func.count(RequestLog.id)).join(
            RequestLog, RequestLog.client_id == ApiClient.id).group_by(ApiClient.name)).all())
    assert set(counts) == {"synthetic-1", "synthetic-2"} and sum(counts.values()) == 600
    assert counts["synthetic-1"] > counts["synthetic-2"]
    assert runner.invoke(args=["ops", "seed", "--rows", "10", "--trend", "0.9"]).exit_code == 2
