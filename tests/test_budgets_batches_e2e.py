"""Batch budgets through Gunicorn (two workers, Redis as the shared ledger) against the emulator's batches:
concurrent creations admit one batch past the budget at most, later ones are refused, the reservation
survives a restart with Redis emptied (the database keeps it), and the batch's end settles it: its real cost
at success, nothing after a cancel."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import MODELS, rows, wait_for
from tests.test_budgets_batches import batch

pytestmark = pytest.mark.e2e

ADMIN_KEY = "batch-budget-admin-0123456789"
MODEL = MODELS[0]
PRICES = f"{MODEL}=1000000/1000000/1000000"  # a dollar a token: a batch's token is half a dollar


def issue(server, budget):
    created = requests.post(f"{server.url}/admin/clients", json={"name": "batcher", "budget_usd": budget,
                                                                   "budget_period": "month"},
                            headers={"X-API-KEY": ADMIN_KEY}, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["api_key"]


def create(server, key):
    return requests.post(f"{server.url}/v1beta/models/{MODEL}:batchGenerateContent", json=batch(),
                         headers={"X-API-KEY": key}, timeout=60)


def poll_until(server, key, name, state):
    for _ in range(40):
        answer = requests.get(f"{server.url}/v1beta/{name}", headers={"X-API-KEY": key}, timeout=60)
        assert answer.status_code == 200, answer.text  # never refused by the budget its batch spent
        if answer.json()["metadata"]["state"] == state:
            return
    pytest.fail(f"{name} never reached {state}")


def spent(server, key):
    usage = requests.get(f"{server.url}/gemini/usage", headers={"X-API-KEY": key}, timeout=30)
    assert usage.status_code == 200, usage.text
    return usage.json()["budget"]["spent_usd"]


def test_batches_hold_the_budget_across_workers_and_a_restart(gunicorn, emulator, redis_server):
    import redis

    store = redis.Redis.from_url(redis_server.url)
    for each in store.scan_iter("gemini-proxy:budget*"):
        store.delete(each)
    requests.post(f"{emulator.url}/_emulator/config", json={"batch_polls_to_finish": 3}, timeout=10)
    settings = dict(ADMIN_API_KEY=ADMIN_KEY, MODEL_PRICES=PRICES, QUOTA_STORAGE_URL=redis_server.url,
                    BATCH_USAGE_INTERVAL_SECONDS="0", WEB_CONCURRENCY=2)
    server = gunicorn(**settings)
    client_id, key = issue(server, 10.0)  # less than one batch's estimate
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: create(server, key), range(6)))
    made = [a.json()["name"] for a in answers if a.status_code == 200]
    assert len(made) == 1, [a.text for a in answers]  # the one admitted holds all that was left
    assert all(a.json()["error"]["code"] == 429 for a in answers if a.status_code != 200)
    [(estimate,)] = rows(server.database_url, "SELECT budget_micro FROM owned_resources WHERE kind = 'batches'")
    assert spent(server, key) == pytest.approx(estimate / 1e6)
    refused = create(server, key)
    assert refused.status_code == 429 and "is spent" in refused.json()["error"]["message"]

    server.stop()  # both workers gone: nothing of the batch is left in any memory
    for each in store.scan_iter("gemini-proxy:budget*"):  # a shared ledger lost, too: the database remembers
        store.delete(each)
    server = gunicorn(**settings)
    refused = create(server, key)
    assert refused.status_code == 429, refused.text
    assert spent(server, key) == pytest.approx(estimate / 1e6)

    poll_until(server, key, made[0], "BATCH_STATE_SUCCEEDED")
    usage_sql = "SELECT cost_usd FROM request_log WHERE route = 'batches.usage'"
    wait_for(lambda: rows(server.database_url, usage_sql), message="the batch's usage recorded")
    [(cost,)] = rows(server.database_url, usage_sql)
    assert 0 < cost < estimate / 1e6
    assert spent(server, key) == pytest.approx(cost, abs=1e-5)

    other_id, other = issue(server, 10.0)
    name = create(server, other).json()["name"]
    assert create(server, other).status_code == 429
    cancelled = requests.post(f"{server.url}/v1beta/{name}:cancel", headers={"X-API-KEY": other}, timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    poll_until(server, other, name, "BATCH_STATE_CANCELLED")
    assert spent(server, other) == 0
    assert create(server, other).status_code == 200  # its budget is whole again
    assert rows(server.database_url, "SELECT count(*) FROM owned_resources WHERE budget_settled_at IS NOT NULL") \
        == [(2,)]
