"""The resilience engine on its own (a scripted transport, a fake clock), and its seams in the app: the
fake sleep reaches the pass-through, the allowed model is decided in one place, /gemini-proxy is cached."""
import pytest

from proxy.errors import ModelNotAllowed
from proxy.upstream.chain import ANY, LISTED, ON_CHAIN, PERMITTED, ModelChain
from proxy.upstream.engine import DEADLINE, EXHAUSTED, NO_TIME_TO_RETRY, STOPPED, Engine, GaveUp, Plan
from proxy.upstream.failures import NOT_FOUND, QUOTA, REJECTED, TRANSIENT, UpstreamFailure
from proxy.upstream.keypool import KeyPool
from proxy.upstream.keysources import FixedKey
from proxy.upstream.retry import RetryPolicy
from proxy.upstream.transport import failure_row
from tests.conftest import KEYS, MODELS, rows

CHAIN = ["m-1", "m-2", "m-3"]


class Script:
    """A transport that answers each attempt from a list: a failure kind (raised), or an answer."""

    def __init__(self, *outcomes):
        self.outcomes, self.sent = list(outcomes), []

    def send(self, job, attempt):
        self.sent.append((attempt.model, attempt.key))
        outcome = self.outcomes.pop(0)
        if outcome in (QUOTA, TRANSIENT, NOT_FOUND, REJECTED):
            raise UpstreamFailure(outcome, f"{outcome} on {attempt.model}")
        return outcome

    @staticmethod
    def recorded(result):
        return failure_row(result) if isinstance(result, UpstreamFailure) else {"outcome": "ok"}


class Clock:
    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def engine(keys=("k-1", "k-2"), deadline=30.0, **policy):
    clock = Clock()
    built = Engine(KeyPool(keys, clock=clock), ModelChain(CHAIN), RetryPolicy(**policy), deadline=deadline,
                   quota_cooldown=60.0, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)
    return built, clock


def plan(built, chain=CHAIN, keys=None, max_attempts=3):
    return Plan(list(chain), keys or built.server_keys(), max_attempts)


def test_a_transient_failure_is_retried_with_backoff_on_the_same_model():
    built, clock = engine()
    value, model, attempts = built.run(plan(built), Script(TRANSIENT, TRANSIENT, "hello"), None)
    assert (value, model) == ("hello", "m-1")
    assert clock.sleeps == [0.5, 1.0]
    assert [(a.number, a.model, a.outcome) for a in attempts] == [
        (1, "m-1", "transient"), (2, "m-1", "transient"), (3, "m-1", "ok")]


def test_fallback_begins_where_retry_gives_up():
    built, clock = engine()
    script = Script(TRANSIENT, TRANSIENT, "hello")
    _, model, _ = built.run(plan(built, max_attempts=2), script, None)
    assert model == "m-2" and [m for m, _ in script.sent] == ["m-1", "m-1", "m-2"]
    assert clock.sleeps == [0.5]  # no wait before the fallback


def test_a_quota_failure_rests_the_key_and_tries_the_next_at_once():
    built, clock = engine()
    script = Script(QUOTA, "hello")
    _, model, _ = built.run(plan(built), script, None)
    assert model == "m-1" and len({key for _, key in script.sent}) == 2
    assert clock.sleeps == []
    assert [(c.model, c.reason) for c in built.pool.cooldowns()] == [("m-1", "quota")]


def test_every_key_resting_falls_back_and_names_the_quota():
    built, _ = engine()
    with pytest.raises(GaveUp) as ended:
        built.run(plan(built, chain=["m-1"]), Script(QUOTA, QUOTA), None)
    assert ended.value.reason == EXHAUSTED and ended.value.failures["m-1"].kind == QUOTA


def test_a_fixed_key_out_of_quota_falls_back_without_resting():
    built, _ = engine()
    _, model, attempts = built.run(plan(built, keys=FixedKey(None)), Script(QUOTA, "hello"), None)
    assert model == "m-2" and built.pool.cooldowns() == []
    assert attempts[0].key_id is None


def test_an_unknown_model_falls_back_and_a_refused_request_stops():
    built, _ = engine()
    assert built.run(plan(built), Script(NOT_FOUND, "hello"), None)[1] == "m-2"
    with pytest.raises(GaveUp) as ended:
        built.run(plan(built), Script(REJECTED), None)
    assert ended.value.reason == STOPPED and ended.value.failure.kind == REJECTED
    assert len(ended.value.attempts) == 1


def test_the_deadline_is_checked_before_sleeping():
    built, clock = engine(deadline=2.0, initial_delay=1.5)
    with pytest.raises(GaveUp) as ended:
        built.run(plan(built), Script(TRANSIENT, TRANSIENT), None)
    assert ended.value.reason == NO_TIME_TO_RETRY and clock.sleeps == [1.5]  # the second wait would overrun


def test_no_attempt_begins_after_the_deadline():
    built, clock = engine(deadline=1.0)

    class Slow(Script):
        def send(self, job, attempt):
            clock.now += 2.0
            return super().send(job, attempt)

    with pytest.raises(GaveUp) as ended:
        built.run(plan(built), Slow(QUOTA, "late"), None)
    assert ended.value.reason == DEADLINE and len(ended.value.attempts) == 1


def test_the_retry_predicate_is_the_plans():
    built, _ = engine()
    with pytest.raises(GaveUp) as ended:
        built.run(Plan(CHAIN, built.server_keys(), 3, retryable=lambda failure: False), Script(TRANSIENT), None)
    assert ended.value.reason == STOPPED


def test_the_allowed_model_is_decided_by_the_chain():
    chain = ModelChain(["a", "b", "c"], allowed=["b", "c", "x"])
    assert chain.models == ["b", "c"] and chain.along(None, ()) == ["b"]
    chain.require_allowed("x", PERMITTED)
    chain.require_allowed("x", LISTED)
    with pytest.raises(ModelNotAllowed, match="'x' is not allowed here; choose one of: b, c."):
        chain.require_allowed("x", ON_CHAIN)
    with pytest.raises(ModelNotAllowed, match="not available here; choose one of: b, c, x."):
        chain.require_allowed("a", LISTED)
    open_chain = ModelChain(["a", "b"])
    open_chain.require_allowed("anything", PERMITTED)  # no allow-list: the pass-through forwards any model
    with pytest.raises(ModelNotAllowed, match="choose one of: a, b."):
        open_chain.require_allowed("anything", LISTED)
    assert open_chain.along("b") == ["b", "a"] and open_chain.along(None, ()) == ["a"]
    assert open_chain.along("b", ("a",)) == ["b"] and open_chain.along("a", ("a",)) == ["a", "b"]
    assert open_chain.along("a", (ANY,)) == ["a", "b"]


def test_the_fake_sleep_reaches_the_pass_through(make_app, emulator):
    app = make_app(PASSTHROUGH_MAX_ATTEMPTS=3)
    emulator.fault(status=503, times=2)
    response = app.test_client().post(f"/v1beta/models/{MODELS[0]}:generateContent",
                                      headers={"x-goog-api-key": KEYS[0]},
                                      json={"contents": [{"parts": [{"text": "hi"}]}]})
    response.get_data()
    response.close()
    assert response.status_code == 200
    assert len(app.sleeps) == 2  # the engine's injected sleep: the test never really waited


def test_gemini_proxy_answers_from_the_cache(make_app, emulator):
    app = make_app(CACHE_ENABLED=True, CACHE_TTL_SECONDS=3600.0, CACHE_MAX_ENTRIES=100)
    client = app.test_client()
    body = {"prompt": "What is a cache?"}
    first = client.post("/gemini-proxy", json=body, headers={"X-Proxy-Cache": "on"})
    second = client.post("/gemini-proxy", json=body, headers={"X-Proxy-Cache": "on"})
    uncached = client.post("/gemini-proxy", json=body)  # not deterministic, not asked for: not cached
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert "X-Cache" not in uncached.headers
    assert second.json["data"]["response"] == first.json["data"]["response"]
    assert second.json["data"]["model"] == first.json["data"]["model"] == MODELS[0]
    assert len([r for r in emulator.requests() if r["action"] == "generateContent"]) == 2
    own = client.post("/gemini-proxy", json={**body, "model": MODELS[0], "api_key": KEYS[1]},
                      headers={"X-Proxy-Cache": "on"})
    assert own.headers["X-Cache"] == "HIT"  # the same answer, whoever's key would have paid for it
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"],
                "SELECT cache_status FROM request_log ORDER BY id") == [
        ("MISS",), ("HIT",), (None,), ("HIT",)]
