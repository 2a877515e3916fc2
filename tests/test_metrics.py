"""GET /metrics: the Prometheus text format, summed across Gunicorn workers."""
import time

import pytest
import requests

from tests.conftest import KEYS, MODELS, samples, value, wait_for

pytestmark = pytest.mark.e2e


def test_metrics_sum_over_two_workers(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS[:2]), WEB_CONCURRENCY=2, RETRY_INITIAL_DELAY_SECONDS="0.01",
                      RETRY_MAX_DELAY_SECONDS="0.02")
    emulator.fault(status=503, model=MODELS[0], times=None)  # every request falls back
    emulator.fault(status=429, model=MODELS[1], key=KEYS[0], times=1)  # one key rests once
    sent = 20
    for n in range(sent):  # a new connection each: the two workers share the load
        assert requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": f"q{n}"}},
                             timeout=30).status_code == 200
    native = requests.post(f"{server.url}/v1beta/models/{MODELS[1]}:generateContent",
                           json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=30)
    assert native.status_code == 200
    # A native exchange is counted when its response closes, a moment after the client's last byte.
    wait_for(lambda: value(samples(requests.get(f"{server.url}/metrics", timeout=10).text),
                           "gemini_proxy_requests_total", route="/v1beta/models/{model}:generateContent",
                           model=MODELS[1], status="200") == 1, message="the native exchange counted")
    for _ in range(4):  # whichever worker answers the scrape, the totals are the server's
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        found = samples(text)
        route = "/gemini/generate"
        assert value(found, "gemini_proxy_requests_total", route=route, model=MODELS[1], status="200") == sent
        assert value(found, "gemini_proxy_request_duration_seconds_count", route=route) == sent
        assert value(found, "gemini_proxy_fallbacks_total", from_model=MODELS[0], to_model=MODELS[1]) == sent
        assert value(found, "gemini_proxy_retries_total", route=route) >= sent * 3
        assert value(found, "gemini_proxy_cooldowns_total", model=MODELS[1], reason="quota") == 1
        assert value(found, "gemini_proxy_tokens_total", model=MODELS[1], kind="prompt") > 0
        assert value(found, "gemini_proxy_requests_total", route="/v1beta/models/{model}:generateContent",
                     model=MODELS[1], status="200") == 1
        assert value(found, "gemini_proxy_upstream_duration_seconds_count", model=MODELS[1]) == sent + 1
    # In flight until each response closed, which follows its last byte by a moment.
    for _ in range(50):
        if value(samples(requests.get(f"{server.url}/metrics", timeout=10).text), "gemini_proxy_in_flight_requests") == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("requests still counted in flight after every response closed")
    pids = {line for line in server.output().splitlines() if "Worker ready" in line}
    assert len(pids) == 2
