"""Budgets hold for batches: a batch's estimated cost (at batch prices) is counted as spent when Gemini makes
it, refused when nothing is left, and replaced by its real cost exactly once when it ends (given back when it
fails or is cancelled), surviving a worker's restart or a new ledger through the owned_resources row."""
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from models import OwnedResource, db
from proxy.access import batch_budgets, budgets, clients
from proxy.access.holds import QuotaHolds
from proxy.access.ledger import LocalLedger
from proxy.errors import InvalidRequest
from tests.conftest import MODELS, rows

MODEL = MODELS[0]
PRICES = {MODEL: (1_000_000.0, 1_000_000.0)}  # a dollar a token in and out: a batch's token is half a dollar


def batch(count=3, output=10, model=MODEL):
    return {"batch": {"displayName": "budgeted", "inputConfig": {"requests": {"requests": [
        {"request": {"contents": [{"parts": [{"text": f"Question {n}"}]}],
                     "generationConfig": {"maxOutputTokens": output}}, "metadata": {"key": str(n)}}
        for n in range(count)]}}}}


def issue(app, budget, period="month"):
    with app.app_context():
        client, secret = clients.create("batcher", budget_usd=budget, budget_period=period)
        return client.id, secret


def spent(app, client_id, period="month"):
    return app.extensions["budgets"].spent(client_id, period, budgets.utcnow()) / budgets.MICRO


def make(client, secret, body=None, action="batchGenerateContent"):
    return client.post(f"/v1beta/models/{MODEL}:{action}", json=body or batch(), headers={"X-API-KEY": secret})


def poll(client, name, secret):
    answer = client.get(f"/v1beta/{name}", headers={"X-API-KEY": secret})
    assert answer.status_code == 200, answer.text
    return answer.json


def owned(app, name):
    with app.app_context():
        row = db.session.execute(select(OwnedResource).where(OwnedResource.name == name)).scalar_one()
        db.session.expunge(row)  # read after the context ends
        return row


def usage_cost(app):
    return rows(app.config["SQLALCHEMY_DATABASE_URI"],
                "SELECT cost_usd FROM request_log WHERE route = 'batches.usage'")


@pytest.fixture
def priced(make_app):
    return make_app(MODEL_PRICES=PRICES)


def test_a_batch_counts_its_estimate_at_batch_prices_until_it_ends(priced, emulator):
    client_id, secret = issue(priced, 100_000.0)
    client = priced.test_client()
    made = make(client, secret)
    assert made.status_code == 200, made.text
    row = owned(priced, made.json["name"])
    assert row.budget_micro > 0 and row.budget_scopes == f"{client_id}:month" and row.budget_settled_at is None
    # Three requests, each its ~25 tokens of JSON in and 10 out, at half a dollar a token.
    assert 3 * 10 * 0.5 < row.budget_micro / budgets.MICRO < 3 * 60 * 0.5
    assert spent(priced, client_id) == pytest.approx(row.budget_micro / budgets.MICRO)


def test_sequential_batches_are_refused_once_the_budget_is_counted(priced, emulator):
    client_id, secret = issue(priced, 10.0)  # less than one batch's estimate: admitted once, then spent
    client = priced.test_client()
    assert make(client, secret).status_code == 200
    for _ in range(3):
        refused = make(client, secret)
        assert refused.status_code == 429, refused.text
        assert refused.json["error"]["details"][0]["reason"] == "BUDGET_EXCEEDED"
        now = budgets.utcnow()
        assert abs(int(refused.headers["Retry-After"]) - (budgets.period_end("month", now) - now).total_seconds()) <= 2
    with priced.app_context():
        made = db.session.execute(select(OwnedResource).where(OwnedResource.kind == "batches")).scalars().all()
        assert len(made) == 1


def test_concurrent_creations_overrun_by_at_most_one_batchs_estimate(priced, emulator):
    client_id, secret = issue(priced, 40.0)
    statuses, start = [], threading.Barrier(6)

    def create():
        client = priced.test_client()
        start.wait()
        statuses.append(make(client, secret).status_code)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    admitted = statuses.count(200)
    assert admitted >= 1 and statuses.count(429) == 6 - admitted
    with priced.app_context():
        estimates = db.session.execute(select(OwnedResource.budget_micro).where(
            OwnedResource.kind == "batches")).scalars().all()
    assert len(estimates) == admitted
    one = max(estimates) / budgets.MICRO
    assert spent(priced, client_id) == pytest.approx(sum(estimates) / budgets.MICRO)
    assert spent(priced, client_id) < 40.0 + one


def test_success_settles_the_real_cost_exactly_once(priced, emulator):
    client_id, secret = issue(priced, 100_000.0)
    client = priced.test_client()
    name = make(client, secret).json["name"]
    while poll(client, name, secret)["metadata"]["state"] != "BATCH_STATE_SUCCEEDED":
        pass
    [(cost,)] = usage_cost(priced)
    assert cost > 0
    assert spent(priced, client_id) == pytest.approx(cost, abs=1e-5)
    assert owned(priced, name).budget_settled_at is not None
    poll(client, name, secret)
    with priced.app_context():  # another caller (the poller, another worker) settles nothing again
        assert batch_budgets.settle_batch(priced, name, 123.0) is False
    assert spent(priced, client_id) == pytest.approx(cost, abs=1e-5)


def test_a_cancelled_batch_gives_its_estimate_back(priced, emulator):
    client_id, secret = issue(priced, 10.0)
    client = priced.test_client()
    name = make(client, secret).json["name"]
    assert make(client, secret).status_code == 429  # the first one's estimate holds the budget
    cancelled = client.post(f"/v1beta/{name}:cancel", headers={"X-API-KEY": secret})
    assert cancelled.status_code == 200, cancelled.text
    assert poll(client, name, secret)["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    assert spent(priced, client_id) == 0
    assert usage_cost(priced) == []
    assert make(client, secret).status_code == 200  # the budget is free again


@pytest.mark.parametrize("state", ["BATCH_STATE_FAILED", "BATCH_STATE_EXPIRED"])
def test_a_failed_or_expired_batch_gives_its_estimate_back(priced, emulator, state):
    client_id, secret = issue(priced, 100_000.0)
    name = make(priced.test_client(), secret).json["name"]
    assert spent(priced, client_id) > 0
    with priced.app_context():
        from proxy.analytics import batch_usage
        batch_usage.count_if_finished(name, {"name": name, "metadata": {"state": state}})
        batch_usage.count_if_finished(name, {"name": name, "metadata": {"state": state}})  # and again: once
    assert spent(priced, client_id) == 0


def fresh_ledgers(tmp_path):
    """A worker (or instance) that starts with no ledger of its own: only the database knows the batch."""
    return budgets.BudgetLedgers(QuotaHolds(LocalLedger(str(tmp_path / "new-day"))),
                                 QuotaHolds(LocalLedger(str(tmp_path / "new-month"))))


def test_a_restart_with_a_new_ledger_still_counts_the_batch_and_settles_it(priced, emulator, tmp_path):
    client_id, secret = issue(priced, 10.0)
    client = priced.test_client()
    name = make(client, secret).json["name"]
    estimate = owned(priced, name).budget_micro / budgets.MICRO
    priced.extensions["budgets"] = fresh_ledgers(tmp_path)
    refused = make(client, secret)  # the floor reads the running batch's estimate from the database
    assert refused.status_code == 429, refused.text
    assert spent(priced, client_id) == pytest.approx(estimate)
    while poll(client, name, secret)["metadata"]["state"] != "BATCH_STATE_SUCCEEDED":
        pass
    [(cost,)] = usage_cost(priced)
    assert spent(priced, client_id) == pytest.approx(cost, abs=1e-5)


def test_a_restarted_worker_on_the_same_ledger_counts_it_once(priced, emulator):
    client_id, secret = issue(priced, 100_000.0)
    client = priced.test_client()
    name = make(client, secret).json["name"]
    estimate = owned(priced, name).budget_micro / budgets.MICRO
    priced.extensions["budgets"] = budgets.BudgetLedgers.from_app(priced)  # this worker's memory is gone
    assert spent(priced, client_id) == pytest.approx(estimate)
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 5}}
    assert client.post(f"/v1beta/models/{MODEL}:generateContent", json=body,
                       headers={"X-API-KEY": secret}).status_code == 200  # its floor adds nothing twice
    assert estimate <= spent(priced, client_id) < estimate + 200
    while poll(client, name, secret)["metadata"]["state"] != "BATCH_STATE_SUCCEEDED":
        pass
    [(cost,)] = usage_cost(priced)
    assert cost <= spent(priced, client_id) < cost + 200  # the generation's few dozen tokens besides


def test_a_file_sourced_batch_is_refused_under_a_budget(priced, emulator):
    _, secret = issue(priced, 100.0)
    body = {"batch": {"displayName": "f", "inputConfig": {"fileName": "files/abc"}}}
    refused = make(priced.test_client(), secret, body)
    assert refused.status_code == 400, refused.text
    assert "inline" in refused.json["error"]["message"]


def test_a_key_without_a_budget_makes_batches_as_before(make_app, emulator):
    app = make_app(MODEL_PRICES=PRICES)
    with app.app_context():
        _, secret = clients.create("free")
    name = make(app.test_client(), secret).json["name"]
    assert owned(app, name).budget_micro is None


def test_an_embedding_batch_estimates_no_output(priced, emulator):
    client_id, secret = issue(priced, 100_000.0)
    body = {"batch": {"displayName": "e", "inputConfig": {"requests": {"requests": [
        {"request": {"content": {"parts": [{"text": "embed me"}]}}}]}}}}
    made = make(priced.test_client(), secret, body, action="asyncBatchEmbedContent")
    assert made.status_code == 200, made.text
    row = owned(priced, made.json["name"])
    assert 0 < row.budget_micro / budgets.MICRO < 30  # a few dozen bytes of input at half a dollar a token


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20), st.booleans())
def test_any_batch_body_is_estimated_or_refused_cleanly(priced, body, embedding):
    prices = budgets.prices_of(priced)
    for shaped in (body, {"batch": body}, {"batch": {"inputConfig": body}},
                   {"batch": {"inputConfig": {"requests": body}}},
                   {"batch": {"inputConfig": {"requests": {"requests": body}}}}):
        try:
            assert 0 <= batch_budgets.estimate_batch(shaped, MODEL, embedding, prices, 8192) <= budgets._HOLD_MAX
        except InvalidRequest as refused:  # a file-sourced batch, named by a truthy fileName
            assert "file" in str(refused)


def test_unseen_input_counts_the_largest_context_not_the_whole_budget(priced):
    body = batch(count=1)
    body["batch"]["inputConfig"]["requests"]["requests"][0]["request"]["contents"][0]["parts"] = [
        {"fileData": {"fileUri": "https://example/files/x"}}]
    micro = batch_budgets.estimate_batch(body, MODEL, False, budgets.prices_of(priced), 8192)
    assert micro == budgets.to_micro((batch_budgets.UNSEEN_INPUT_TOKENS + 10) * 0.5)
