"""A batch's usage is counted once, for its owner, at half price: whoever sees it finished first (the client's
poll through the proxy, or the poller) claims it, and nobody counts it again."""
import json
import threading

import pytest
import requests
from sqlalchemy import select

from models import ApiClient, OwnedResource, db
from proxy.access.clients import hash_key
from proxy.analytics import batch_usage
from proxy.upstream.keypool import fingerprint
from proxy.wire.usage import Usage
from tests import processes
from tests.conftest import KEYS, MODELS, rows, wait_for

MODEL = MODELS[0]
CLIENT_A = "batch-client-a-0123456789"
CLIENT_B = "batch-client-b-9876543210"
ADMIN_KEY = "batch-admin-key-0123456789"
USAGE_ROWS = "SELECT client_id, batch, prompt_tokens, completion_tokens, total_tokens, model_used FROM request_log " \
             "WHERE route = 'batches.usage'"


def succeeded(*usages, state="BATCH_STATE_SUCCEEDED"):
    inlined = [{"response": {"usageMetadata": usage}} for usage in usages]
    return {"name": "batches/b1", "metadata": {"state": state, "model": f"models/{MODEL}",
                                               "output": {"inlinedResponses": {"inlinedResponses": inlined}}},
            "done": True}


def own(app, name="batches/b1", client_id=None):
    with app.app_context():
        db.session.add(OwnedResource(name=name, kind="batches", key_id=fingerprint(KEYS[0]), client_id=client_id,
                                     model=MODEL))
        db.session.commit()


def usage_rows(app):
    return rows(app.config["SQLALCHEMY_DATABASE_URI"], USAGE_ROWS)


def test_a_finished_batch_is_counted_by_exactly_one_of_many_concurrent_callers(app):
    own(app)
    batch = succeeded({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
                      {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10})
    won, start = [], threading.Barrier(8)

    def race():
        with app.app_context():
            start.wait()
            won.append(batch_usage.count_if_finished("batches/b1", batch))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len([record for record in won if record is not None]) == 1
    assert usage_rows(app) == [(None, 1, 17, 8, 25, MODEL)]
    with app.app_context():
        assert batch_usage.count_if_finished("batches/b1", batch) is None  # and later calls count nothing


@pytest.mark.parametrize("state", ["BATCH_STATE_RUNNING", "BATCH_STATE_PENDING"])
def test_an_unfinished_batch_is_not_counted(app, state):
    own(app)
    with app.app_context():
        assert batch_usage.count_if_finished("batches/b1", succeeded({"totalTokenCount": 5}, state=state)) is None
        row = db.session.get(OwnedResource, "batches/b1")
        assert (row.ended_at, row.usage_counted_at) == (None, None)
    assert usage_rows(app) == []


@pytest.mark.parametrize("state", ["BATCH_STATE_FAILED", "JOB_STATE_CANCELLED", "BATCH_STATE_EXPIRED"])
def test_a_batch_that_ended_without_succeeding_is_ended_and_not_counted(app, state):
    own(app)
    with app.app_context():
        assert batch_usage.count_if_finished("batches/b1", succeeded({"totalTokenCount": 5}, state=state)) is None
        row = db.session.get(OwnedResource, "batches/b1")
        assert row.ended_at is not None and row.usage_counted_at is None
    assert usage_rows(app) == []


def test_the_sdks_spelling_of_success_counts_too(app):
    own(app)
    with app.app_context():
        assert batch_usage.count_if_finished("batches/b1", succeeded({"totalTokenCount": 5},
                                                                     state="JOB_STATE_SUCCEEDED")) is not None


def test_a_batch_the_proxy_did_not_make_is_not_counted(app):
    with app.app_context():
        assert batch_usage.count_if_finished("batches/b1", succeeded({"totalTokenCount": 5})) is None
    assert usage_rows(app) == []


def test_a_responses_file_is_summed_and_a_file_that_cannot_be_had_leaves_the_batch_for_later(app):
    own(app)
    batch = {"metadata": {"state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/out"}}}
    lines = "".join(json.dumps({"key": str(n), "response": {"usageMetadata": {
        "promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 1, "totalTokenCount": 7}}}) + "\n"
        for n in range(3)).encode()
    with app.app_context():
        assert batch_usage.count_if_finished("batches/b1", batch, download=lambda name: None) is None
        assert db.session.get(OwnedResource, "batches/b1").usage_counted_at is None
        record = batch_usage.count_if_finished("batches/b1", batch,
                                               download={"files/out": lines.splitlines()}.get)
    assert record.batch and record.thoughts_tokens == 3
    assert usage_rows(app) == [(None, 1, 12, 6, 21, MODEL)]  # the model the proxy recorded it made


def test_a_batch_of_embeddings_is_counted_once_with_no_tokens(app):
    own(app)
    with app.app_context():
        record = batch_usage.count_if_finished("batches/b1", succeeded({}, {}))
    assert record is not None and Usage() == Usage(record.prompt_tokens, record.completion_tokens)


# Through the proxy, against the emulator ----------------------------------------------------------------

BATCH = {"batch": {"displayName": "usage", "inputConfig": {"requests": {"requests": [
    {"request": {"contents": [{"parts": [{"text": f"Question {n} for the batch"}]}]}, "metadata": {"key": str(n)}}
    for n in range(3)]}}}}


@pytest.fixture
def gateway_app(make_app):
    return make_app(API_KEYS=[CLIENT_A, CLIENT_B], ADMIN_API_KEY=ADMIN_KEY)


def client_id(app, secret):
    with app.app_context():
        return db.session.execute(select(ApiClient.id).where(ApiClient.key_hash == hash_key(secret))).scalar_one()


def make_batch(client, key=CLIENT_A):
    made = client.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=BATCH, headers={"X-API-KEY": key})
    assert made.status_code == 200, made.text
    return made.json["name"]


def poll(client, name, key=CLIENT_A):
    answer = client.get(f"/v1beta/{name}", headers={"X-API-KEY": key})
    assert answer.status_code == 200, answer.text
    return answer.json


def expected_usage(answer):
    usages = [item["response"]["usageMetadata"]
              for item in answer["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]]
    return tuple(sum(u[name] for u in usages) for name in ("promptTokenCount", "candidatesTokenCount",
                                                           "totalTokenCount"))


def test_a_batch_polled_by_its_client_is_counted_once_for_that_client_at_half_price(gateway_app, emulator):
    client = gateway_app.test_client()
    name = make_batch(client)
    answer = poll(client, name)
    while answer["metadata"]["state"] != "BATCH_STATE_SUCCEEDED":
        assert usage_rows(gateway_app) == []
        answer = poll(client, name)
    prompt, completion, total = expected_usage(answer)
    assert usage_rows(gateway_app) == [(client_id(gateway_app, CLIENT_A), 1, prompt, completion, total, MODEL)]
    poll(client, name)  # a second look adds nothing
    assert len(usage_rows(gateway_app)) == 1
    costs = client.get("/analytics/costs", headers={"X-API-KEY": ADMIN_KEY}).json
    [flash] = [m for m in costs["by_model"] if m["model"] == MODEL]
    assert flash["batch_requests"] == 1
    assert flash["cost_usd"] == pytest.approx((prompt * 0.30 + completion * 2.50) / 1e6 / 2, abs=1e-6)
    # Costed once, as it was recorded, at the batch's share.
    [(cost, source)] = rows(gateway_app.config["SQLALCHEMY_DATABASE_URI"],
                            "SELECT cost_usd, price_source FROM request_log WHERE route = 'batches.usage'")
    assert (cost, source) == (pytest.approx((prompt * 0.30 + completion * 2.50) / 1e6 / 2), "default:2026-12-03")


def test_another_client_cannot_read_the_batch_nor_have_it_counted(gateway_app, emulator):
    client = gateway_app.test_client()
    name = make_batch(client)
    for _ in range(3):
        assert client.get(f"/v1beta/{name}", headers={"X-API-KEY": CLIENT_B}).status_code == 404
    assert usage_rows(gateway_app) == []


def test_a_batch_nobody_polls_is_counted_by_the_poller(gateway_app, emulator):
    client = gateway_app.test_client()
    name = make_batch(client)
    counted = []
    with gateway_app.app_context():
        for _ in range(5):
            counted.append(batch_usage.poll_once(gateway_app))
        assert db.session.get(OwnedResource, name).ended_at is not None
    assert sum(counted) == 1
    [(owner, batch, *_)] = usage_rows(gateway_app)
    assert (owner, batch) == (client_id(gateway_app, CLIENT_A), 1)
    poll(client, name)  # the client looks at last: nothing more
    assert len(usage_rows(gateway_app)) == 1


def test_the_poller_leaves_a_batch_deleted_at_google(gateway_app, emulator):
    client = gateway_app.test_client()
    name = make_batch(client)
    requests.delete(f"{emulator.url}/v1beta/{name}", headers={"x-goog-api-key": KEYS[0]}, timeout=10)
    with gateway_app.app_context():
        assert batch_usage.poll_once(gateway_app) == 0
        assert db.session.get(OwnedResource, name).ended_at is not None
        assert batch_usage.poll_once(gateway_app) == 0  # not asked about again
    assert usage_rows(gateway_app) == []


def test_a_counted_batch_spends_its_owners_daily_token_quota(make_app, emulator):
    app = make_app(API_KEYS=[CLIENT_A, CLIENT_B], DAILY_TOKEN_QUOTA=60)
    client = app.test_client()
    name = make_batch(client)
    while poll(client, name)["metadata"]["state"] != "BATCH_STATE_SUCCEEDED":
        pass
    [(_, _, _, _, total, _)] = usage_rows(app)
    assert total > 60
    quotas = app.extensions["quotas"]
    later = quotas.clock() + 5
    quotas.clock = lambda: later  # the next check reads the recorded usage again
    body = {"contents": [{"parts": [{"text": "one more"}]}]}
    refused = client.post(f"/v1beta/models/{MODEL}:generateContent", json=body, headers={"X-API-KEY": CLIENT_A})
    assert refused.status_code == 429, refused.text
    other = client.post(f"/v1beta/models/{MODEL}:generateContent", json=body, headers={"X-API-KEY": CLIENT_B})
    assert other.status_code == 200, other.text


@pytest.mark.e2e
def test_over_gunicorn_a_batch_polled_on_both_workers_is_counted_once(tmp_path, emulator_process):
    requests.post(f"{emulator_process.url}/_emulator/config", json={"batch_polls_to_finish": 2}, timeout=10)
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    process = processes.start_gunicorn(str(tmp_path), GEMINI_API_KEY=",".join(KEYS), GEMINI_MODELS=MODEL,
                                       GEMINI_BASE_URL=emulator_process.url, DATABASE_URL=url,
                                       API_KEYS=f"{CLIENT_A},{CLIENT_B}")
    server = process.wait_ready(log_marker="Worker ready", count=process.workers)
    try:
        def call(method, path, **kwargs):
            answer = requests.request(method, f"{server.url}{path}", headers={"X-API-KEY": CLIENT_A}, timeout=60,
                                      **kwargs)
            assert answer.status_code == 200, answer.text
            return answer.json()

        name = call("POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json=BATCH)["name"]
        states = [call("GET", f"/v1beta/{name}")["metadata"]["state"] for _ in range(12)]  # over both workers
        assert states[-1] == "BATCH_STATE_SUCCEEDED"
        wait_for(lambda: len(rows(url, USAGE_ROWS)) >= 1, timeout=30, message="the batch counted")
        [(owner, batch, prompt, _, total, model)] = rows(url, USAGE_ROWS)
        assert owner is not None and batch == 1 and total > prompt > 0 and model == MODEL
        assert rows(url, "SELECT count(*) FROM owned_resources WHERE usage_counted_at IS NOT NULL") == [(1,)]
    finally:
        process.stop()


def test_the_poller_sums_a_responses_file_it_downloads_with_the_batch_s_key(gateway_app, emulator, tmp_path):
    from google import genai
    from google.genai import types

    sdk = genai.Client(api_key=KEYS[0], http_options=types.HttpOptions(base_url=emulator.url))
    lines = tmp_path / "requests.jsonl"
    lines.write_text("".join(json.dumps({"key": str(n), "request": {"contents": [{"parts": [
        {"text": f"File question {n}"}]}]}}) + "\n" for n in range(4)))
    uploaded = sdk.files.upload(file=str(lines), config={"mime_type": "application/jsonl"})
    batch = sdk.batches.create(model=MODEL, src=uploaded.name)
    own(gateway_app, name=batch.name)  # as if made through the proxy, on KEYS[0]
    with gateway_app.app_context():
        counted = sum(batch_usage.poll_once(gateway_app) for _ in range(4))
    assert counted == 1
    done = sdk.batches.get(name=batch.name)
    assert done.dest.file_name  # its answers are in a file, which only its key may download
    answers = [json.loads(line) for line in sdk.files.download(file=done.dest.file_name).decode().splitlines()]
    usages = [answer["response"]["usageMetadata"] for answer in answers]
    [(_, flag, prompt, completion, total, _)] = usage_rows(gateway_app)
    assert (flag, prompt, completion, total) == (1, sum(u["promptTokenCount"] for u in usages),
                                                 sum(u["candidatesTokenCount"] for u in usages),
                                                 sum(u["totalTokenCount"] for u in usages))
    assert len(usages) == 4
