"""Token quotas in the app: holds settle on every API, bad bodies release theirs, Redis down falls back."""
import pytest

from tests.conftest import MODELS
from tests.test_access import call, issue

NATIVE = f"/v1beta/models/{MODELS[0]}"


def ledger_usage(app, client_id):
    """(settled, held) in this app's local ledger for today."""
    from datetime import datetime, timezone

    return app.extensions["quotas"].local.usage(client_id, datetime.now(timezone.utc).date().isoformat())


@pytest.mark.parametrize("api", ["generate", "compat", "native"])
def test_each_api_settles_its_hold_with_the_real_usage(make_app, api):
    app = make_app()
    client_id, secret = issue(app, daily_token_quota=10_000)
    assert call(app.test_client(), api, secret).status_code == 200
    used, held = ledger_usage(app, client_id)
    assert 0 < used < 100 and held == 0


def test_a_stream_settles_when_it_closes(make_app):
    app = make_app()
    client_id, secret = issue(app, daily_token_quota=10_000)
    response = app.test_client().post(f"{NATIVE}:streamGenerateContent?alt=sse",
                                      json={"contents": [{"parts": [{"text": "hi"}]}]},
                                      headers={"x-goog-api-key": secret})
    assert response.status_code == 200
    assert ledger_usage(app, client_id)[1] > 0  # held while the stream is open
    response.get_data()
    response.close()
    used, held = ledger_usage(app, client_id)
    assert used > 0 and held == 0


@pytest.mark.parametrize("body", [b"{not json", b"{\"contents\": NaN}"])
def test_a_bad_body_is_refused_and_releases_its_hold(make_app, body):
    app = make_app()
    client_id, secret = issue(app, daily_token_quota=100)
    client = app.test_client()
    response = client.post(f"{NATIVE}:generateContent", data=body, content_type="application/json",
                           headers={"x-goog-api-key": secret})
    assert response.status_code == 400 and response.json["error"]["status"] == "INVALID_ARGUMENT"
    assert ledger_usage(app, client_id) == (0, 0)
    assert call(client, "native", secret).status_code == 200


def test_a_small_output_cap_holds_little(make_app):
    """A request naming its output cap holds about that much, leaving the rest to other requests."""
    app = make_app()
    client_id, secret = issue(app, daily_token_quota=100_000)
    quotas = app.extensions["quotas"]
    with app.test_request_context("/gemini/generate", method="POST", headers={"X-API-KEY": secret},
                                  json={"prompt": {"text": "hello"}, "generation_config": {"max_output_tokens": 50}}):
        app.preprocess_request()
        (entry,) = next(iter(quotas._pending.values()))
        assert 50 < entry[4] < 100


def test_listing_models_is_not_refused_while_generations_hold_the_quota(make_app):
    app = make_app()
    client_id, secret = issue(app, daily_token_quota=100)
    quotas = app.extensions["quotas"]
    from datetime import datetime, timezone

    day = datetime.now(timezone.utc).date().isoformat()
    quotas.reserve(client_id, day, "in-flight", 100, 100)  # a generation in flight holds all of it
    assert app.test_client().get("/v1beta/models", headers={"x-goog-api-key": secret}).status_code == 200
    held = call(app.test_client(), "generate", secret)
    assert held.status_code == 429 and held.json["error"]["code"] == "TOKEN_QUOTA_EXCEEDED"
    assert "in flight" in held.json["error"]["message"] and held.headers["Retry-After"] == "1"


def test_with_redis_unreachable_the_quota_holds_on_this_instance(make_app):
    app = make_app(QUOTA_STORAGE_URL="redis://127.0.0.1:1/0")
    _, secret = issue(app, daily_token_quota=40)
    client = app.test_client()
    assert client.get("/health").json["quota_sharing"] == "instances"  # configured, not yet tried
    statuses = [call(client, "generate", secret).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    health = client.get("/health").json
    assert health["quota_sharing"] == "host" and "token quotas and budgets are held by this host" in health["message"]


def test_health_says_the_host_shares_the_quota_without_redis(make_app):
    assert make_app().test_client().get("/health").json["quota_sharing"] == "host"


def test_the_hold_of_a_request_that_died_is_released_after_quota_hold_seconds(make_app):
    app = make_app(QUOTA_HOLD_SECONDS=30)
    _, secret = issue(app, daily_token_quota=100)
    ledger = app.extensions["quotas"].local
    now = [ledger.clock()]
    ledger.clock = lambda: now[0]
    with app.test_request_context("/gemini/generate", method="POST", headers={"X-API-KEY": secret},
                                  json={"prompt": {"text": "never answered"}}):
        app.preprocess_request()  # it holds all 100 tokens, then its worker dies: nothing settles it
    client = app.test_client()
    assert call(client, "generate", secret).status_code == 429
    now[0] += 31
    assert call(client, "generate", secret).status_code == 200
