"""The native pass-through: the official SDKs pointed at the proxy, streams, keys, logging."""
import json
import time
import warnings

import pytest
import requests

from tests import processes
from tests.conftest import KEYS, MODELS, rows, wait_recorded

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as legacy
from google import genai
from google.api_core import exceptions as legacy_errors
from google.genai import errors as genai_errors
from google.genai import types

pytestmark = pytest.mark.e2e

MODEL = MODELS[0]
CLIENT_KEY, SERVER_KEY = KEYS[0], KEYS[1]
NO_RETRY = {"retry": None, "timeout": 20}
CONTENTS = {"contents": [{"role": "user", "parts": [{"text": "Stream me a story"}]}]}


@pytest.fixture(scope="module")
def native(tmp_path_factory, emulator_process):
    """One Gunicorn server for the module: server key KEYS[1], fallback off."""
    folder = tmp_path_factory.mktemp("native")
    url = f"sqlite:///{folder / 'proxy.db'}"
    process = processes.start_gunicorn(str(folder), GEMINI_API_KEY=SERVER_KEY, GEMINI_BASE_URL=emulator_process.url,
                                       GEMINI_MODELS=",".join(MODELS), DATABASE_URL=url, LOG_LEVEL="DEBUG")
    process.database_url, process.folder = url, folder
    yield process.wait_ready(log_marker="Worker ready", count=process.workers)
    process.stop()


def genai_client(base_url, key=CLIENT_KEY):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))


def use_legacy(base_url, key=CLIENT_KEY):
    legacy.configure(api_key=key, transport="rest", client_options={"api_endpoint": base_url})
    return legacy.GenerativeModel(MODEL)


def wait_for_row(database_url, sql, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(database_url, sql)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no row for {sql}")


def test_google_genai_through_the_proxy_matches_direct(native, emulator):
    direct, proxied = genai_client(emulator.url), genai_client(native.url)
    config = types.GenerateContentConfig(temperature=0.4, max_output_tokens=64)
    a = direct.models.generate_content(model=MODEL, contents="hello", config=config)
    b = proxied.models.generate_content(model=MODEL, contents="hello", config=config)
    assert b.text == a.text and b.usage_metadata.total_token_count == a.usage_metadata.total_token_count
    stream_a = [c.text for c in direct.models.generate_content_stream(model=MODEL, contents="story")]
    stream_b = [c.text for c in proxied.models.generate_content_stream(model=MODEL, contents="story")]
    assert stream_b == stream_a and len(stream_b) > 1
    assert emulator.requests()[-1]["query"].get("alt") == "sse"
    count = proxied.models.count_tokens(model=MODEL, contents="one two three")
    assert count.total_tokens == direct.models.count_tokens(model=MODEL, contents="one two three").total_tokens
    assert [m.name for m in proxied.models.list()] == [m.name for m in direct.models.list()]
    embedded = proxied.models.embed_content(model="text-embedding-004", contents=["a", "b"])
    assert len(embedded.embeddings) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_google_genai_sees_upstream_errors_unchanged(native, emulator, status):
    client = genai_client(native.url)  # held: a collected Client closes its connection pool
    emulator.fault(status=status)
    with pytest.raises(genai_errors.APIError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == status
    if status == 429:
        assert "QuotaFailure" in json.dumps(caught.value.details)


def test_legacy_sdk_through_the_proxy_matches_direct(native, emulator):
    direct = use_legacy(emulator.url).generate_content("hello", request_options=NO_RETRY)
    proxied_model = use_legacy(native.url)
    proxied = proxied_model.generate_content("hello", request_options=NO_RETRY)
    assert proxied.text == direct.text
    assert proxied.usage_metadata.total_token_count == direct.usage_metadata.total_token_count
    chunks = list(proxied_model.generate_content("story", stream=True, request_options=NO_RETRY))
    assert len(chunks) > 1 and chunks[-1].candidates[0].finish_reason.name == "STOP"
    assert "alt" not in emulator.requests()[-1]["query"]  # the JSON-array stream format
    assert proxied_model.count_tokens("one two", request_options=NO_RETRY).total_tokens > 0
    assert "models/gemini-2.5-flash" in [m.name for m in legacy.list_models(request_options=NO_RETRY)]


@pytest.mark.parametrize("status,exception", [(429, legacy_errors.TooManyRequests),
                                              (503, legacy_errors.ServiceUnavailable)])
def test_legacy_sdk_sees_upstream_errors_unchanged(native, emulator, status, exception):
    model = use_legacy(native.url)
    emulator.fault(status=status)
    with pytest.raises(exception):
        model.generate_content("hi", request_options=NO_RETRY)

    def stream_error(base_url):
        emulator.fault(status=status)
        with pytest.raises(legacy_errors.GoogleAPICallError) as caught:
            list(use_legacy(base_url).generate_content("hi", stream=True, request_options=NO_RETRY))
        return caught.value

    # Google wraps a stream's error in an array, which this SDK reports as a BadRequest of its
    # own; through the proxy it must report exactly what it reports against Gemini.
    via_proxy, direct = stream_error(native.url), stream_error(emulator.url)
    assert type(via_proxy) is type(direct) and via_proxy.code == direct.code


@pytest.mark.parametrize("alt", ["sse", None])
def test_stream_arrives_chunk_by_chunk(native, emulator, alt):
    emulator.configure(stream_chunk_delay_ms=400, stream_chunk_words=4)
    params = {"alt": alt} if alt else {}
    url = f"{native.url}/v1beta/models/{MODEL}:streamGenerateContent"
    with requests.post(url, json=CONTENTS, params=params, headers={"x-goog-api-key": CLIENT_KEY},
                       stream=True, timeout=30) as response:
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["X-Gemini-Model"] == MODEL
        pieces = response.iter_content(chunk_size=None)
        first = next(pieces)
        # The emulator is still producing the stream when its first chunk is already here.
        assert emulator.stats()["in_flight"] == 1
        rest = b"".join(pieces)
    body = (first + rest).decode()
    if alt:
        assert body.startswith("data: {") and body.count("data: ") > 2
    else:
        assert body.startswith("[") and body.endswith("]") and len(json.loads(body)) > 2


def test_a_multi_megabyte_chunk_is_forwarded_whole(native, emulator):
    size = 3 * 1024 * 1024
    body = {"contents": [{"parts": [{"text": f"think hard [[big-chunk:{size}]]"}]}]}
    url = f"{native.url}/v1beta/models/{MODEL}:streamGenerateContent"
    proxied = requests.post(url, json=body, params={"alt": "sse", "key": CLIENT_KEY}, timeout=60).content
    direct = requests.post(url.replace(native.url, emulator.url), json=body,
                           params={"alt": "sse", "key": CLIENT_KEY}, timeout=60).content
    assert proxied == direct and len(proxied) > size
    first_event = json.loads(proxied.split(b"\r\n\r\n")[0][len(b"data: "):])
    assert len(first_event["candidates"][0]["content"]["parts"][0]["thoughtSignature"]) == size


def test_exchanges_are_logged_in_full_without_secrets(native, emulator):
    request_id = "exchange-log-check-1"
    response = requests.post(f"{native.url}/v1beta/models/{MODEL}:streamGenerateContent",
                             params={"alt": "sse", "key": CLIENT_KEY},
                             json={**CONTENTS, "generationConfig": {"temperature": 0.25, "maxOutputTokens": 50,
                                                                    "topK": 5}},
                             headers={"X-Request-ID": request_id, "Cookie": "session=abc123secret"}, timeout=30)
    assert response.status_code == 200
    (row,) = wait_for_row(native.database_url,
                          "SELECT l.route, l.model_used, l.status_code, l.prompt_tokens, l.completion_tokens, "
                          "l.total_tokens, l.temperature, l.max_output_tokens, l.streamed, l.ttfb_ms, e.query, "
                          "e.stream_format, e.key_source, e.top_k, e.request_headers, l.metric_id, e.id "
                          "FROM request_log l JOIN exchanges e ON e.request_log_id = l.id "
                          f"WHERE l.request_id = '{request_id}'")
    route, model, status, prompt, completion, total, temperature, max_tokens, streamed, ttfb, query, fmt, \
        source, top_k, headers, metric_id, exchange_id = row
    assert (route, model, status, streamed) == ("/v1beta/models/{model}:streamGenerateContent", MODEL, 200, 1)
    assert prompt > 0 and completion > 0 and total == prompt + completion
    assert (temperature, max_tokens, top_k) == (0.25, 50, 5)
    assert query == "alt=sse" and fmt == "sse" and source == "client" and ttfb > 0
    assert json.loads(headers)["Cookie"] == "[redacted]"
    assert metric_id is not None
    import zlib

    ((request_body, response_body),) = rows(native.database_url, "SELECT request_body, response_body FROM "
                                            f"exchange_bodies WHERE exchange_id = {exchange_id}")
    assert json.loads(zlib.decompress(request_body))["generationConfig"]["topK"] == 5
    assert zlib.decompress(response_body) == response.content


def test_no_secret_in_the_database_or_logs(native, emulator):
    url = f"{native.url}/v1beta/models/{MODEL}:generateContent"
    sent = [requests.post(url, json=CONTENTS, params={"key": CLIENT_KEY}, timeout=30),
            requests.post(url, json=CONTENTS, headers={"x-goog-api-key": KEYS[2]}, timeout=30),
            requests.post(url, json=CONTENTS, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=30),
            requests.post(url, json=CONTENTS, headers={"x-goog-api-key": ""}, timeout=30)]  # the server's key
    wait_recorded(native.database_url, sent)  # and their log lines, written before the records
    assert [r["key"] for r in emulator.requests()] == [CLIENT_KEY, KEYS[2], CLIENT_KEY, SERVER_KEY]
    for path in native.folder.iterdir():
        if path.is_file():
            data = path.read_bytes()
            assert not any(key.encode() in data for key in KEYS), path.name
            assert b"abc123secret" not in data, path.name


def test_client_key_forms_are_forwarded_as_sent(native, emulator):
    url = f"{native.url}/v1beta/models/{MODEL}:countTokens"
    requests.post(url, json=CONTENTS, params={"key": CLIENT_KEY}, timeout=30)
    requests.post(url, json=CONTENTS, headers={"Authorization": f"Bearer {KEYS[2]}"}, timeout=30)
    first, second = emulator.requests()
    assert first["query"]["key"] == CLIENT_KEY and "x-goog-api-key" not in first["headers"]
    assert second["headers"]["authorization"] == f"Bearer {KEYS[2]}"


def test_client_disconnect_mid_stream_is_recorded_as_aborted(native, emulator):
    emulator.configure(stream_chunk_delay_ms=150, stream_chunk_words=1)
    request_id = "client-walks-away-1"
    response = requests.post(f"{native.url}/v1beta/models/{MODEL}:streamGenerateContent", json=CONTENTS,
                             params={"alt": "sse", "key": CLIENT_KEY}, headers={"X-Request-ID": request_id},
                             stream=True, timeout=30)
    next(response.iter_content(chunk_size=None))
    response.close()
    ((code, prompt, completion, status, aborted),) = wait_for_row(
        native.database_url, "SELECT l.error_code, l.prompt_tokens, l.completion_tokens, l.status_code, e.aborted "
                             "FROM request_log l JOIN exchanges e ON e.request_log_id = l.id "
                             f"WHERE l.request_id = '{request_id}'")
    assert (code, aborted, status) == ("STREAM_ABORTED_CLIENT", "client", 200)
    assert prompt > 0 and completion >= 1  # the usage that had arrived is counted
    assert rows(native.database_url, f"SELECT metric_id FROM request_log WHERE request_id = '{request_id}'") == [
        (None,)]


def test_upstream_breaking_off_is_recorded_and_the_client_stream_ends_short(native, emulator):
    emulator.fault(mode="cut", after_chunks=2)
    request_id = "upstream-breaks-1"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.post(f"{native.url}/v1beta/models/{MODEL}:streamGenerateContent", json=CONTENTS,
                      params={"alt": "sse", "key": CLIENT_KEY}, headers={"X-Request-ID": request_id},
                      timeout=30).content
    ((code, completion),) = wait_for_row(native.database_url, "SELECT error_code, completion_tokens FROM request_log "
                                                              f"WHERE request_id = '{request_id}'")
    assert code == "STREAM_ABORTED_UPSTREAM" and completion == 8  # two chunks of four words


def test_upstream_errors_pass_through_unchanged_without_fallback(native, emulator):
    emulator.fault(status=503)
    url = f"{native.url}/v1beta/models/{MODEL}:generateContent"
    proxied = requests.post(url, json=CONTENTS, params={"key": CLIENT_KEY}, timeout=30)
    emulator.fault(status=503)
    direct = requests.post(url.replace(native.url, emulator.url), json=CONTENTS, params={"key": CLIENT_KEY},
                           timeout=30)
    assert proxied.status_code == 503 and proxied.content == direct.content
    assert len(emulator.requests()) == 2  # no retry by default


def test_unknown_paths_under_the_prefixes_are_forwarded(native, emulator):
    response = requests.get(f"{native.url}/v1beta/tunedModels", params={"key": CLIENT_KEY}, timeout=30)
    assert response.status_code == 404 and response.json()["error"]["code"] == 404
    v1 = requests.post(f"{native.url}/v1/models/{MODEL}:generateContent", json=CONTENTS,
                       headers={"x-goog-api-key": CLIENT_KEY}, timeout=30)
    assert v1.status_code == 200 and v1.json()["candidates"]


def _server(tmp_path, emulator, **settings):
    settings.setdefault("GEMINI_API_KEY", SERVER_KEY)
    settings.setdefault("GEMINI_BASE_URL", emulator.url)
    database_url = f"sqlite:///{tmp_path / f'p{processes.free_port()}.db'}"
    process = processes.start_gunicorn(str(tmp_path), GEMINI_MODELS=",".join(MODELS), WEB_CONCURRENCY=1,
                                       DATABASE_URL=database_url, **settings)
    process.database_url = database_url
    return process.wait_ready(log_marker="Worker ready")


@pytest.fixture
def server(tmp_path, emulator):
    started = []

    def start(**settings):
        started.append(_server(tmp_path, emulator, **settings))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.mark.parametrize("alt", ["sse", None])
def test_fallback_before_the_first_byte_rewrites_the_model(server, emulator, alt):
    proxy = server(PASSTHROUGH_FALLBACK="true")
    emulator.fault(status=503, model=MODEL, times=None)
    params = {"key": CLIENT_KEY, **({"alt": alt} if alt else {})}
    response = requests.post(f"{proxy.url}/v1beta/models/{MODEL}:streamGenerateContent", json=CONTENTS,
                             params=params, timeout=30)
    assert response.status_code == 200 and response.headers["X-Gemini-Model"] == MODELS[1]
    assert [r["model"] for r in emulator.requests()] == [MODEL, MODELS[1]]
    assert MODELS[1] in response.text


def test_fallback_can_be_limited_to_named_models(server, emulator):
    proxy = server(PASSTHROUGH_FALLBACK=MODELS[1])
    emulator.fault(status=503, model=MODEL, times=None)
    response = requests.post(f"{proxy.url}/v1beta/models/{MODEL}:generateContent", json=CONTENTS,
                             params={"key": CLIENT_KEY}, timeout=30)
    assert response.status_code == 503


def test_retry_before_the_first_byte_when_enabled(server, emulator):
    proxy = server(PASSTHROUGH_MAX_ATTEMPTS="3", RETRY_INITIAL_DELAY_SECONDS="0.01")
    emulator.fault(status=503, times=2)
    response = requests.post(f"{proxy.url}/v1beta/models/{MODEL}:generateContent", json=CONTENTS,
                             params={"key": CLIENT_KEY}, timeout=30)
    assert response.status_code == 200 and len(emulator.requests()) == 3


def test_server_key_out_of_quota_hands_over_to_the_next_pool_key(server, emulator):
    proxy = server(GEMINI_API_KEY=f"{KEYS[1]},{KEYS[2]}")
    emulator.fault(status=429, key=KEYS[1], times=None)
    emulator.fault(status=429, key=KEYS[2], times=None, model=MODELS[1])
    for _ in range(3):
        response = requests.post(f"{proxy.url}/v1beta/models/{MODEL}:generateContent", json=CONTENTS, timeout=30)
        assert response.status_code == 200
    assert [r["key"] for r in emulator.requests()].count(KEYS[1]) == 1


def test_upstream_unreachable_is_502_and_too_slow_is_504_in_googles_shape(server, emulator):
    dead = server(GEMINI_BASE_URL=f"http://127.0.0.1:{processes.free_port()}")
    unreachable = requests.post(f"{dead.url}/v1beta/models/{MODEL}:generateContent", json=CONTENTS,
                                params={"key": CLIENT_KEY}, timeout=30)
    assert unreachable.status_code == 502 and unreachable.json()["error"]["status"] == "UNAVAILABLE"
    slow = server(UPSTREAM_TIMEOUT_SECONDS="0.5")
    emulator.fault(mode="slow", seconds=3)
    too_slow = requests.post(f"{slow.url}/v1beta/models/{MODEL}:generateContent", json=CONTENTS,
                             params={"key": CLIENT_KEY}, timeout=30)
    assert too_slow.status_code == 504 and too_slow.json()["error"]["status"] == "DEADLINE_EXCEEDED"
    assert wait_for_row(slow.database_url, "SELECT status_code FROM request_log") == [(504,)]


def test_proxy_mounted_under_a_path_prefix(server, emulator):
    proxy = server(SCRIPT_NAME="/gemini-api")
    client = genai_client(f"{proxy.url}/gemini-api")
    assert client.models.generate_content(model=MODEL, contents="prefixed").text
    assert requests.get(f"{proxy.url}/gemini-api/health", timeout=10).status_code == 200


def test_body_logging_can_be_off_or_capped(server, emulator):
    off = server(LOG_BODIES="false")
    requests.post(f"{off.url}/v1beta/models/{MODEL}:generateContent", json=CONTENTS, params={"key": CLIENT_KEY},
                  timeout=30)
    wait_for_row(off.database_url, "SELECT id FROM exchanges")
    assert rows(off.database_url, "SELECT count(*) FROM exchange_bodies") == [(0,)]
    assert rows(off.database_url, "SELECT total_tokens > 0 FROM request_log") == [(1,)]


def test_body_logging_cap_marks_truncation(server, emulator):
    capped = server(LOG_BODY_MAX_BYTES="100")
    requests.post(f"{capped.url}/v1beta/models/{MODEL}:streamGenerateContent", json=CONTENTS,
                  params={"key": CLIENT_KEY, "alt": "sse"}, timeout=30)
    ((truncated, total),) = wait_for_row(capped.database_url,
                                         "SELECT b.response_truncated, l.total_tokens FROM exchange_bodies b "
                                         "JOIN exchanges e ON b.exchange_id = e.id "
                                         "JOIN request_log l ON e.request_log_id = l.id")
    assert truncated == 1 and total > 0  # usage still read from the stream's last chunks
