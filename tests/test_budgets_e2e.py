"""Budgets through Gunicorn (two workers): concurrent requests overrun a key's budget by at most one
request's cost, the refusal's Retry-After is the period's end, each threshold alerts once (log and webhook)
whichever worker crosses it, and Live sessions are ended after the turn that spends it, then refused."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import simple_websocket

from proxy.access import budgets
from tests.conftest import MODELS, rows, samples, value, wait_for
from tests.test_budget_alerts import Receiver
from tests.test_live_e2e import LIVE_MODEL, closed, raw_session, sessions, turn, ws_url

pytestmark = pytest.mark.e2e

ADMIN_KEY = "budget-admin-key-0123456789"
# A dollar a token of every kind: a request's cost in USD is its billed tokens.
PRICES = ",".join(f"{m}=1000000/1000000/1000000" for m in (*MODELS, LIVE_MODEL))
BUDGET = 300.0
COST_SQL = ("SELECT coalesce(prompt_tokens, 0) + coalesce(tool_use_prompt_tokens, 0) + coalesce(completion_tokens, 0)"
            " + coalesce(thoughts_tokens, 0) FROM request_log WHERE client_id = {id} AND status_code = 200")


def issue(server, **terms):
    created = requests.post(f"{server.url}/admin/clients", json={"name": "budgeted", **terms},
                            headers={"X-API-KEY": ADMIN_KEY}, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["api_key"]


def generate(server, key, n):
    return requests.post(f"{server.url}/gemini/generate", headers={"X-API-KEY": key}, timeout=60, json={
        "prompt": {"text": f"question {n}"}, "generation_config": {"max_output_tokens": 30}})


def test_concurrent_requests_overrun_the_budget_by_at_most_one_request(gunicorn, emulator):
    receiver = Receiver()
    try:
        server = gunicorn(ADMIN_API_KEY=ADMIN_KEY, MODEL_PRICES=PRICES, ALERT_WEBHOOK_URL=receiver.url,
                          WEB_CONCURRENCY=2)
        client_id, key = issue(server, budget_usd=BUDGET, budget_period="month")
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda n: generate(server, key, n), range(32)))
        assert all(r.status_code in (200, 429) for r in answers), [r.text for r in answers]
        assert all(r.json()["error"]["code"] == "BUDGET_EXCEEDED" for r in answers if r.status_code == 429)
        # Until the budget is spent (requests held by others in flight were told to retry in a second).
        for n in range(100, 140):
            last = generate(server, key, n)
            if last.status_code == 429 and "is spent" in last.json()["error"]["message"]:
                break
        else:
            pytest.fail("the budget was never spent")
        now = budgets.utcnow()
        to_month_end = (budgets.period_end("month", now) - now).total_seconds()
        assert abs(int(last.headers["Retry-After"]) - to_month_end) <= 5

        sql = COST_SQL.format(id=client_id)
        total = "SELECT count(*) FROM request_log WHERE client_id = {id}".format(id=client_id)
        sent = len(answers) + n - 99
        wait_for(lambda: rows(server.database_url, total)[0][0] >= sent, message="every request's record")
        costs = [c for (c,) in rows(server.database_url, sql)]
        assert BUDGET <= sum(costs) <= BUDGET + max(costs), costs

        # One alert per threshold although two workers crossed them, by log and by webhook, with no key.
        wait_for(lambda: len(receiver.delivered()) >= 2, message="two webhook alerts")
        time.sleep(0.5)
        # in either order: two workers may cross them at once, each delivering in the background
        assert sorted(a["threshold"] for a in receiver.delivered()) == [0.8, 1.0]
        log = server.output()
        assert log.count("budget alert: client") == 2 and key not in log
        assert key not in json.dumps(receiver.bodies)

        scraped = samples(requests.get(f"{server.url}/metrics", headers={"X-API-KEY": ADMIN_KEY}, timeout=30).text)
        assert value(scraped, "gemini_proxy_budget_spent_ratio", scope=f"client:{client_id}", period="month") >= 1
        usage = requests.get(f"{server.url}/gemini/usage", headers={"X-API-KEY": key}, timeout=30).json()
        assert usage["budget"]["remaining_usd"] == 0 and usage["period"]["cost_usd"] == pytest.approx(sum(costs))
    finally:
        receiver.close()


def test_a_live_session_ends_after_the_turn_that_spends_its_budget_and_the_next_is_refused(gunicorn, emulator):
    server = gunicorn(ADMIN_API_KEY=ADMIN_KEY, MODEL_PRICES=PRICES, WEB_CONCURRENCY=2)
    _, key = issue(server, budget_usd=30, budget_period="day")
    ws, first = raw_session(server, headers={"X-API-KEY": key})
    assert "setupComplete" in first
    answer = turn(ws, "a question long enough to spend the day's small budget at once, word after word " * 3)
    assert answer[-1]["serverContent"]["turnComplete"]  # the turn that ran over reached the client whole
    code, reason = closed(ws)
    assert code == 1008 and reason.startswith("BUDGET_EXCEEDED")
    assert sessions(server, 1)[0][2:5] == (429, "budget", "BUDGET_EXCEEDED")
    with pytest.raises(simple_websocket.ConnectionError) as refused:  # spent: refused before any setup
        simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": key})
    assert refused.value.status_code == 429


def test_a_live_setup_naming_a_model_outside_the_keys_allowlist_is_refused(gunicorn, emulator):
    server = gunicorn(ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=1)
    _, key = issue(server, models=[MODELS[0]])
    ws = simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": key})
    ws.send(json.dumps({"setup": {"model": f"models/{LIVE_MODEL}"}}))
    code, reason = closed(ws)
    assert code == 1008 and reason.startswith("MODEL_NOT_ALLOWED_FOR_KEY")


def test_redis_holds_the_budget_and_its_alerts_across_instances(make_app, redis_server, tmp_path, caplog):
    """Two instances with databases (and local ledgers) of their own: only Redis joins their spend."""
    import logging

    import redis

    from proxy.access import clients
    from tests.test_access import call

    store = redis.Redis.from_url(redis_server.url)
    for key in store.scan_iter("gemini-proxy:budget*"):
        store.delete(key)
    prices = {m: (1_000_000.0, 1_000_000.0) for m in MODELS}
    instances = [make_app(MODEL_PRICES=prices, QUOTA_STORAGE_URL=redis_server.url,
                          SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / f'instance-{n}.db'}") for n in range(2)]
    secrets = []
    for app in instances:
        with app.app_context():
            client, secret = clients.create("shared", budget_usd=100.0, budget_period="day")
            assert client.id == 1  # the same client in each instance's database
            secrets.append(secret)
    answers = []
    with caplog.at_level(logging.WARNING, "proxy.access.budget_alerts"):
        for n in range(20):
            answers.append(call(instances[n % 2].test_client(), "generate", secrets[n % 2]))
            if answers[-1].status_code == 429:
                break
    assert answers[-1].status_code == 429 and answers[-1].json["error"]["code"] == "BUDGET_EXCEEDED"
    served = [a for a in answers if a.status_code == 200]
    assert len(served) >= 2 and {n % 2 for n in range(len(served))} == {0, 1}  # both instances spent it
    assert sum("budget alert" in r.getMessage() for r in caplog.records) == 2
    assert list(store.scan_iter("gemini-proxy:budget-day:*")) and list(store.scan_iter("gemini-proxy:budget-alert:*"))
