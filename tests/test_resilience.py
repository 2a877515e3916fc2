"""Retry, fallback, cool-downs and the key pool, against the emulator's injected faults."""
import pytest

from tests.conftest import KEYS, MODELS, rows

PROMPT = {"prompt": {"text": "Say hello"}}


def generate(client, body=PROMPT):
    return client.post("/gemini/generate", json=body)


def attempts(app):
    return rows(app.config["SQLALCHEMY_DATABASE_URI"],
                "SELECT model, key_id, outcome, status_code FROM attempts ORDER BY id")


def test_transient_503_is_retried_with_backoff_then_succeeds(app, client, emulator):
    emulator.fault(status=503, times=2)
    response = generate(client)
    assert response.status_code == 200
    assert response.json["model"] == MODELS[0]
    assert [a[2] for a in attempts(app)] == ["transient", "transient", "ok"]
    assert len(app.sleeps) == 2
    # Jittered exponential: the second wait is drawn from a doubled range.
    assert 0.25 <= app.sleeps[0] <= 0.5 and 0.5 <= app.sleeps[1] <= 1.0


@pytest.mark.parametrize("status", [500, 504])
def test_other_transient_statuses_are_retried(app, client, emulator, status):
    emulator.fault(status=status, times=1)
    assert generate(client).status_code == 200
    assert [a[3] for a in attempts(app)] == [status, 200]


def test_short_retry_delay_from_gemini_is_honoured(app, client, emulator):
    emulator.fault(status=503, times=1, retry_delay="3s")
    assert generate(client).status_code == 200
    assert app.sleeps == [3.0]


def test_long_retry_delay_from_gemini_is_not_waited_for(app, client, emulator):
    emulator.fault(status=503, times=1, retry_delay="45s")
    assert generate(client).status_code == 200
    assert len(app.sleeps) == 1 and app.sleeps[0] <= 0.5


def test_fallback_to_next_model_after_retries_are_spent(app, client, emulator):
    emulator.fault(status=503, model=MODELS[0], times=None)
    response = generate(client)
    assert response.status_code == 200
    assert response.json["model"] == MODELS[1]
    outcomes = attempts(app)
    assert [a[0] for a in outcomes] == [MODELS[0]] * 3 + [MODELS[1]]
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"],
                "SELECT model_requested, model_used, attempt_count FROM request_log") == [(None, MODELS[1], 4)]


def test_all_models_failing_gives_502_with_every_attempt_recorded(app, client, emulator):
    emulator.fault(status=503, times=None)
    response = generate(client)
    assert response.status_code == 502
    assert response.json["error"]["code"] == "UPSTREAM_ERROR"
    assert len(attempts(app)) == 6
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT count(*) FROM metrics") == [(0,)]


def test_quota_429_rests_that_key_and_model_and_later_requests_skip_it(make_app, emulator):
    app = make_app(GEMINI_API_KEYS=KEYS[:1])
    client = app.test_client()
    emulator.fault(status=429, model=MODELS[0], retry_delay="30s", times=1)
    first = generate(client)
    assert first.status_code == 200 and first.json["model"] == MODELS[1]
    assert app.sleeps == []  # a quota error moves on at once; it does not back off
    calls_before = emulator.stats()["total"]
    second = generate(client)
    # The resting pair is skipped without an upstream call: one call, straight to the fallback.
    assert second.json["model"] == MODELS[1]
    assert emulator.stats()["total"] == calls_before + 1
    cooldowns = client.get("/health").json["cooldowns"]
    assert [(c["model"], c["reason"]) for c in cooldowns] == [(MODELS[0], "quota")]
    assert 25 < cooldowns[0]["seconds_left"] <= 30


def test_cooldown_ends_by_itself(make_app, emulator):
    app = make_app()
    pool = app.extensions["gemini"].pool
    now = [1000.0]
    pool.clock = lambda: now[0]
    emulator.fault(status=429, model=MODELS[0], retry_delay="5s", times=1)
    client = app.test_client()
    assert generate(client).json["model"] == MODELS[1]
    assert generate(client).json["model"] == MODELS[1]
    now[0] += 5.1
    assert generate(client).json["model"] == MODELS[0]


def test_key_pool_serves_with_the_next_key_when_one_is_out_of_quota(make_app, emulator):
    app = make_app(GEMINI_API_KEYS=KEYS)
    client = app.test_client()
    emulator.fault(status=429, key=KEYS[0], times=None)
    emulator.fault(status=429, key=KEYS[1], times=None)
    for _ in range(4):
        response = generate(client)
        assert response.status_code == 200 and response.json["model"] == MODELS[0]
    used = [r["key"] for r in emulator.requests()]
    # Each exhausted key is tried once, then rests; after that only the healthy key is used.
    assert used.count(KEYS[0]) == 1 and used.count(KEYS[1]) == 1
    assert used[-3:] == [KEYS[2]] * 3


def test_every_key_and_model_out_of_quota_gives_429_with_retry_after(make_app, emulator):
    app = make_app(GEMINI_API_KEYS=KEYS[:2])
    client = app.test_client()
    emulator.fault(status=429, retry_delay="12s", times=None)
    response = generate(client)
    assert response.status_code == 429
    assert response.json["error"]["code"] == "QUOTA_EXHAUSTED"
    assert 11 <= int(response.headers["Retry-After"]) <= 12
    assert len(attempts(app)) == 4  # two keys x two models, each once


def test_per_day_quota_rests_until_the_daily_reset(make_app, emulator):
    app = make_app()
    client = app.test_client()
    emulator.fault(status=429, model=MODELS[0], per_day=True, retry_delay="40s", times=1)
    assert generate(client).json["model"] == MODELS[1]
    (cooldown,) = client.get("/health").json["cooldowns"]
    assert cooldown["reason"] == "quota_per_day"
    assert cooldown["seconds_left"] > 40  # until midnight Pacific, not RetryInfo's 40 s


def test_invalid_server_key_rests_and_the_pool_moves_on(make_app, emulator):
    app = make_app(GEMINI_API_KEYS=["not-a-valid-key-9999", KEYS[0]])
    client = app.test_client()
    for _ in range(3):
        assert generate(client).status_code == 200
    keys = [r["key"] for r in emulator.requests()]
    assert keys.count("not-a-valid-key-9999") == 1


def test_non_transient_400_is_not_retried(app, client, emulator):
    emulator.fault(status=400, times=1)
    response = generate(client)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "UPSTREAM_REJECTED"
    assert len(attempts(app)) == 1 and app.sleeps == []


def test_unknown_model_upstream_404_falls_back_without_retry(app, client, emulator):
    emulator.fault(status=404, model=MODELS[0], times=1)
    response = generate(client)
    assert response.json["model"] == MODELS[1]
    assert [a[3] for a in attempts(app)] == [404, 200]
    assert app.sleeps == []


def test_fallback_can_be_switched_off(make_app, emulator):
    app = make_app(FALLBACK_ENABLED=False)
    emulator.fault(status=503, model=MODELS[0], times=None)
    response = generate(app.test_client())
    assert response.status_code == 502
    assert {a[0] for a in attempts(app)} == {MODELS[0]}


def test_requested_model_is_tried_first(app, client, emulator):
    response = generate(client, {**PROMPT, "model": MODELS[1]})
    assert response.json["model"] == MODELS[1]
    assert emulator.requests()[-1]["model"] == MODELS[1]


def test_deadline_bounds_all_attempts_and_gives_504(make_app, emulator):
    app = make_app(REQUEST_DEADLINE_SECONDS=3, UPSTREAM_TIMEOUT_SECONDS=1, RETRY_MAX_ATTEMPTS=20,
                   RETRY_INITIAL_DELAY_SECONDS=1, RETRY_MAX_DELAY_SECONDS=1)
    emulator.fault(status=503, times=None)
    response = generate(app.test_client())
    assert response.status_code == 504
    assert response.json["error"]["code"] == "DEADLINE_EXCEEDED"
    assert sum(app.sleeps) < 3  # never sleeps past the deadline


def test_slow_upstream_times_out_and_is_retried(make_app, emulator):
    app = make_app(UPSTREAM_TIMEOUT_SECONDS=0.3)
    emulator.fault(mode="slow", seconds=1.0, times=1)
    response = generate(app.test_client())
    assert response.status_code == 200
    assert [a[2] for a in attempts(app)] == ["timeout", "ok"]


def test_malformed_upstream_json_is_a_transient_failure(app, client, emulator):
    emulator.fault(mode="malformed", times=1)
    assert generate(client).status_code == 200
    assert [a[2] for a in attempts(app)] == ["transient", "ok"]


def test_unreachable_upstream_gives_502(make_app, emulator):
    from tests.processes import free_port

    app = make_app(GEMINI_BASE_URL=f"http://127.0.0.1:{free_port()}", RETRY_MAX_ATTEMPTS=1)
    response = generate(app.test_client())
    assert response.status_code == 502
    assert "unreachable" in response.json["error"]["message"]


def test_no_api_key_answers_503_naming_the_variable(make_app):
    app = make_app(GEMINI_API_KEYS=[])
    client = app.test_client()
    response = generate(client)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "NO_API_KEY"
    assert "GEMINI_API_KEY" in response.json["error"]["message"]
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json["status"] == "degraded" and health.json["api_key_configured"] is False


def test_blocked_prompt_gets_its_own_code(app, client, emulator):
    response = generate(client, {"prompt": {"text": "[[block-prompt]] something"}})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "PROMPT_BLOCKED"
    assert response.json["error"]["details"] == {"block_reason": "SAFETY"}


def test_answer_withheld_for_safety_gets_its_own_code(app, client, emulator):
    response = generate(client, {"prompt": {"text": "[[block-answer]] something"}})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "RESPONSE_BLOCKED"
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"],
                "SELECT status_code, error_code, model_used FROM request_log") == [
        (422, "RESPONSE_BLOCKED", MODELS[0])]


def test_missing_usage_metadata_is_counted_with_count_tokens(app, client, emulator):
    emulator.configure(omit_usage=True)
    response = generate(client)
    assert response.status_code == 200
    assert response.json["token_source"] == "count_tokens"
    metrics = response.json["metrics"]
    assert metrics["prompt_tokens"] > 0 and metrics["completion_tokens"] > 0
    assert metrics["total_tokens"] == metrics["prompt_tokens"] + metrics["completion_tokens"]
    assert [r["action"] for r in emulator.requests()] == ["generateContent", "countTokens", "countTokens"]


def test_token_counts_fall_back_to_an_estimate_when_count_tokens_fails(app, client, emulator):
    emulator.configure(omit_usage=True)
    emulator.fault(status=500, action="countTokens", times=None)
    response = generate(client)
    assert response.status_code == 200
    assert response.json["token_source"] == "estimate"
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT token_source FROM request_log") == [("estimate",)]


def test_attempts_record_a_key_fingerprint_never_the_key(make_app, emulator, tmp_path):
    app = make_app(GEMINI_API_KEYS=KEYS)
    emulator.fault(status=503, times=1)
    generate(app.test_client())
    database = (tmp_path / "proxy.db").read_bytes()
    wal = tmp_path / "proxy.db-wal"
    everything = database + (wal.read_bytes() if wal.exists() else b"")
    for key in KEYS:
        assert key.encode() not in everything
    assert all(a[1].startswith("key-") for a in attempts(app))
