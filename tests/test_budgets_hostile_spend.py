"""Budgets under hostile traffic: a request that fails anywhere gives its hold back, a stream cut by either
side settles at what it really used, a hold made before a period ends is settled in that period, and a
client reads only its own usage."""
import pytest

from datetime import datetime

from proxy.access import budgets, clients
from tests.conftest import MODELS
from tests.test_budgets import PRICES

BODY = {"contents": [{"parts": [{"text": "hello " * 20}]}]}
NATIVE = f"/v1beta/models/{MODELS[0]}:generateContent"
STREAM = f"/v1beta/models/{MODELS[0]}:streamGenerateContent?alt=sse"


@pytest.fixture
def app(make_app):
    return make_app(MODEL_PRICES=PRICES)


def key(app, **terms):
    with app.app_context():
        client, secret = clients.create("spender", budget_usd=100_000.0, budget_period="day", **terms)
        return client.id, {"X-API-KEY": secret}


def held(app):
    ledgers = app.extensions["budgets"]
    return len(ledgers._applied) + sum(len(each) for each in ledgers.holds["day"]._pending.values())


def spent(app, client_id):
    return app.extensions["budgets"].spent(client_id, "day", budgets.utcnow())


def recorded_cost(app, client_id):
    from models import RequestLog, db
    with app.app_context():
        return sum(row.cost_usd or 0 for row in db.session.query(RequestLog).filter_by(client_id=client_id))


@pytest.mark.parametrize("path, body", [
    ("/gemini/generate", {"prompt": {"text": ""}}), ("/gemini/generate", {"prompt": 5}),
    ("/gemini/generate", {"prompt": {"text": "x"}, "model": "gemini-9"}), (NATIVE, {"contents": "nope"}),
])
def test_a_refused_request_gives_its_hold_back(app, path, body):
    client_id, headers = key(app)
    assert app.test_client().post(path, json=body, headers=headers).status_code >= 400
    assert held(app) == 0 and spent(app, client_id) == 0


@pytest.mark.parametrize("path, body", [("/gemini/generate", {"prompt": {"text": "x"}}), (NATIVE, BODY),
                                        ("/gemini-proxy", {"prompt": "x"})])
def test_a_request_that_fails_upstream_gives_its_hold_back(app, emulator, path, body):
    client_id, headers = key(app)
    emulator.fault(status=503, times=None)
    assert app.test_client().post(path, json=body, headers=headers).status_code in (502, 503)
    assert held(app) == 0 and spent(app, client_id) == 0


def test_a_stream_cut_by_the_client_settles_at_what_it_used(app):
    client_id, headers = key(app)
    response = app.test_client().post(STREAM, json=BODY, headers=headers, buffered=False)
    next(iter(response.response))
    response.close()
    assert held(app) == 0
    assert spent(app, client_id) == budgets.to_micro(recorded_cost(app, client_id)) > 0


def test_a_stream_cut_upstream_settles_at_what_it_used(app, emulator):
    client_id, headers = key(app)
    emulator.fault(mode="cut", after_chunks=2)
    response = app.test_client().post(STREAM, json=BODY, headers=headers)
    with pytest.raises(Exception):
        response.get_data()
    response.close()
    assert held(app) == 0
    assert spent(app, client_id) == budgets.to_micro(recorded_cost(app, client_id))


def test_a_hold_made_before_midnight_settles_in_its_own_day(app):
    ledgers = app.extensions["budgets"]
    before, after = datetime(2026, 12, 3, 23, 59, 59), datetime(2026, 12, 4, 0, 0, 1)
    assert ledgers.reserve("late", [(7, "day", 1_000)], 400, before) is None
    ledgers.settle("late", 300)
    assert ledgers.spent(7, "day", before) == 300 and ledgers.spent(7, "day", after) == 0
    assert ledgers.reserve("early", [(7, "day", 1_000)], 900, after) is None  # the new day is whole


def test_a_client_reads_only_its_own_usage(app):
    spender_id, spender = key(app)
    other_id, other = key(app)
    client = app.test_client()
    assert client.post(NATIVE, json=BODY, headers=spender).status_code == 200
    for query in ("", f"?client_id={spender_id}", f"?client={spender_id}&id={spender_id}"):
        mine = client.get(f"/gemini/usage{query}", headers=other).json
        assert mine["client_id"] == other_id and mine["budget"]["spent_usd"] == 0
        assert mine["today"]["tokens"] == 0 and mine["today"]["cost_usd"] == 0  # its own reads are its only requests
    refused = client.get("/gemini/usage", headers={"x-goog-api-key": "AIza-not-a-client-key"})
    assert refused.status_code == 401 and refused.json["error"]["code"] == "UNAUTHORIZED"


def _hold_of(app, headers, path, body):
    """The micro-dollars a request holds once admitted (its before_request hooks run, nothing sent)."""
    ledgers = app.extensions["budgets"]
    with app.test_request_context(path, method="POST", headers=headers, json=body):
        app.preprocess_request()
        entries = [entry for each in ledgers.holds["day"]._pending.values() for entry in each]
        ledgers.settle(next(iter(ledgers._applied)), 0) if ledgers._applied else None
    return entries[0][4] if entries else 0


@pytest.mark.parametrize("path, body", [
    ("/v1beta/interactions", {"model": MODELS[0], "input": "hello"}),
    (NATIVE, BODY),
])
def test_every_request_that_generates_holds_its_estimate(app, path, body):
    """A request admitted holding nothing lets any number run at once past the budget: an interaction
    generates as generateContent does, so it holds as much."""
    _, headers = key(app)
    assert _hold_of(app, headers, path, body) > 0


def test_an_interaction_settles_at_its_real_cost(app):
    client_id, headers = key(app)
    answer = app.test_client().post("/v1beta/interactions", json={"model": MODELS[0], "input": "hello"},
                                    headers=headers)
    assert answer.status_code == 200 and held(app) == 0
    assert spent(app, client_id) == budgets.to_micro(recorded_cost(app, client_id))


def test_a_client_reusing_anothers_request_id_settles_only_its_own_hold(app):
    """X-Request-ID is the client's to choose: B naming A's id must not settle A's hold with B's cost."""
    a_id, a = key(app)
    b_id, b = key(app)
    ledgers = app.extensions["budgets"]
    shared = {"X-Request-ID": "chosen-by-both-0001"}
    with app.test_request_context(NATIVE, method="POST", headers={**a, **shared}, json=BODY):
        app.preprocess_request()  # A is in flight, holding its estimate
        a_held = spent(app, a_id)
        assert app.test_client().post(NATIVE, json=BODY, headers={**b, **shared}).status_code == 200
        assert spent(app, a_id) == a_held  # still A's own hold, not B's cost
        assert spent(app, b_id) == budgets.to_micro(recorded_cost(app, b_id)) > 0
        assert ledgers.holding(budgets.hold_id(a_id, "chosen-by-both-0001"))
