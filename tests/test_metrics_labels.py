"""/metrics stays bounded whatever clients send: labels fed by client input (models, routes) take configured
values, a bounded set learned from upstream's answers, and `other` for the rest."""
import pytest
import requests

from proxy.observability.labels import OTHER, BoundedLabel
from tests.conftest import KEYS, MODELS, native_over_http, samples, value

INVENTED = [f"invented-model-{n:03d}" for n in range(200)]


def scrape(server):
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def every_api(server, model):
    """The three ways a client names a model: the pass-through's path, /gemini/generate's body, and
    /gemini-proxy's body with the client's own Gemini key."""
    native = native_over_http(server, "hi", path=f"/v1beta/models/{model}:generateContent")
    generate = requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": "hi"}, "model": model},
                             timeout=30)
    compat = requests.post(f"{server.url}/gemini-proxy", json={"prompt": "hi", "model": model, "api_key": KEYS[1]},
                           timeout=30)
    return native.status_code, generate.status_code, compat.status_code


@pytest.mark.e2e
def test_invented_models_and_routes_leave_metrics_bounded(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=2)
    assert every_api(server, MODELS[0]) == (200, 200, 200)
    baseline = scrape(server).count("\n")

    for model in INVENTED:
        assert every_api(server, model) == (404, 400, 400)  # the last two refuse it
    for n in range(50):  # actions and OpenAI paths Gemini does not have
        assert native_over_http(server, "hi", path=f"/v1beta/models/{MODELS[0]}:inventedAction{n}").status_code < 500
        assert native_over_http(server, "hi", path=f"/v1beta/openai/invented{n}").status_code < 500

    text = scrape(server)
    assert text.count("\n") - baseline < 150, f"{text.count(chr(10)) - baseline} lines added to /metrics"
    assert "invented" not in text
    found = samples(text)
    native_route = "/v1beta/models/{model}:generateContent"
    assert value(found, "gemini_proxy_requests_total", route=native_route, model=OTHER, status="404") == 200
    assert value(found, "gemini_proxy_requests_total", route=native_route, model=MODELS[0], status="200") == 1
    # A model that answers is learned, and keeps its own label.
    assert native_over_http(server, "hi", path="/v1beta/models/gemini-2.0-flash:generateContent").status_code == 200
    found = samples(scrape(server))
    assert value(found, "gemini_proxy_requests_total", route=native_route, model="gemini-2.0-flash",
                 status="200") == 1


def test_a_bounded_label_learns_only_from_answers_and_only_so_many():
    label = BoundedLabel(["configured"], limit=2)
    assert label("configured") == "configured" and label("unknown") == OTHER
    assert label("a", learn=True) == "a" and label("a") == "a"
    assert label("b", learn=True) == "b" and label("c", learn=True) == OTHER
    assert label(None) == "-"
