"""The request state, the one record type every API fills, its spool form, and the observers the app
factory registers on it."""
from datetime import datetime

from proxy.requestctx import RequestState, current
from proxy.storage.admitted import aborted
from proxy.storage.records import AttemptRow, ExchangeBodyRecord, ExchangeRecord, MetricRecord, RequestRecord
from proxy.storage.spool import decode, encode
from tests.conftest import KEYS, MODELS

NATIVE = f"/v1beta/models/{MODELS[0]}:generateContent"
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


def _full_record():
    started = datetime(2026, 12, 2, 10, 11, 12, 131415)
    return RequestRecord(
        request_id="r-0001", created_at=started, route=NATIVE, method="POST", status_code=200, latency_ms=1.5,
        client_id=3, model_requested=MODELS[0], model_used=MODELS[0], ttfb_ms=0.7, streamed=True,
        attempts=[AttemptRow(1, started, MODELS[0], "key#abcd", "ok", 200, None, None, 0.4)],
        metric=MetricRecord(started, 1, 2, 3, 0.5, 10),
        exchange=ExchangeRecord(path=NATIVE, key_source="server", request_bytes=5,
                                body=ExchangeBodyRecord(b"\x00in", b"out", False, True)))


def test_a_record_goes_through_the_spool_unchanged():
    record = _full_record()
    assert RequestRecord.from_spooled(decode(encode(record.to_spooled()))) == record


def test_the_spool_keeps_its_line_format():
    """Files spooled by the version before the typed record (plain mappings) are still replayed."""
    spooled = _full_record().to_spooled()
    assert spooled["attempts"][0]["model"] == MODELS[0] and spooled["metric"]["total_tokens"] == 3
    assert spooled["exchange"]["body"]["response_truncated"] is True
    old = {"request_id": "dead-1", "created_at": datetime(2026, 1, 2), "route": "/gemini/generate",
           "status_code": 200, "latency_ms": 12.5, "unknown": "ignored", "attempts": []}
    record = RequestRecord.from_spooled(old)
    assert (record.route, record.method, record.metric, record.exchange) == ("/gemini/generate", None, None, None)


def test_a_dead_workers_request_is_a_record_of_the_same_type():
    record = aborted({"request_id": "r-2", "started_at": datetime(2026, 1, 2), "area": "native",
                      "native": ["/v1beta/models/{model}:generateContent", MODELS[0]], "method": "POST"})
    assert isinstance(record, RequestRecord)
    assert (record.error_code, record.status_code, record.model_requested) == ("WORKER_DIED", 502, MODELS[0])


def test_every_request_has_one_typed_state(app):
    seen = []
    app.before_request(lambda: seen.append(current()))
    app.test_client().get("/health", headers={"X-Request-ID": "mine-123456"})
    (state,) = seen
    assert isinstance(state, RequestState) and state.request_id == "mine-123456" and state.area is None
    with app.test_request_context("/health"):
        assert current().request_id == ""  # a request that began before the first hook: an empty state


def test_observers_registered_in_the_factory_see_every_record(app):
    seen = []
    app.extensions["records"].watch_finished(seen.append)
    client = app.test_client()
    assert client.post("/gemini/generate", json={"prompt": {"text": "hi"}}).status_code == 200
    assert client.post(NATIVE, json=BODY, headers={"x-goog-api-key": KEYS[0]}).status_code == 200
    assert client.post("/gemini/generate", json={"prompt": {"text": ""}}).status_code == 400
    assert [type(record) for record in seen] == [RequestRecord] * 3
    generation, exchange, refused = seen
    assert generation.metric is not None and generation.attempts[0].outcome == "ok"
    assert exchange.exchange.path == NATIVE and exchange.route == "/v1beta/models/{model}:generateContent"
    assert refused.error_code == "INVALID_REQUEST" and refused.attempt_count == 0


def test_docs_list_each_apps_own_models(make_app):
    first, second = make_app(), make_app(GEMINI_MODELS=MODELS[1:])
    for app, listed in ((first, MODELS), (second, MODELS[1:])):
        spec = app.test_client().get("/swagger.json").json
        for name in ("GenerateRequest", "CompatRequest"):
            assert spec["definitions"][name]["properties"]["model"]["enum"] == listed
    from proxy.api.generate import request_model

    assert getattr(request_model["model"], "enum", None) is None  # the shared model is left as declared


def test_written_observers_see_each_transactions_records(app):
    written = []
    app.extensions["records"].watch_written(lambda records: written.append([r.request_id for r in records]))
    response = app.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}},
                                      headers={"X-Request-ID": "written-0001"})
    assert response.status_code == 200 and written == [["written-0001"]]  # no loop in tests: written at once
