"""POST /gemini/generate: the spec's request and response, validation, and what is stored."""
import pytest

from tests.conftest import MODELS, rows

SPEC_BODY = {"prompt": {"text": "Tell me a joke"}, "generation_config": {"temperature": 0.7, "max_output_tokens": 100}}


def test_successful_generation_matches_the_spec(client):
    response = client.post("/gemini/generate", json=SPEC_BODY)
    assert response.status_code == 200
    body = response.json
    assert body["text"].startswith(f"Emulated {MODELS[0]} answer to: Tell me a joke")
    metrics = body["metrics"]
    assert set(metrics) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert metrics["total_tokens"] == metrics["prompt_tokens"] + metrics["completion_tokens"] > 0
    assert body["model"] == MODELS[0] and body["finish_reason"] == "STOP"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["latency_ms"] > 0


def test_a_finish_reason_newer_than_the_sdk_is_not_taken_for_a_block(client):
    response = client.post("/gemini/generate", json={"prompt": {"text": "Hello [[finish-unknown]]"}})
    assert response.status_code == 200
    assert response.json["text"] and response.json["finish_reason"] is None


def test_custom_config_reaches_gemini(client, emulator):
    body = {
        "prompt": {"text": "Be brief"},
        "generation_config": {"temperature": 0.2, "max_output_tokens": 5, "top_p": 0.5, "top_k": 7,
                              "stop_sequences": ["END"]},
        "system_instruction": "You are terse.",
    }
    response = client.post("/gemini/generate", json=body)
    assert response.status_code == 200
    assert response.json["finish_reason"] == "MAX_TOKENS"
    assert len(response.json["text"].split()) == 5
    sent = emulator.requests()[-1]["body"]
    config = sent["generationConfig"]
    assert config["temperature"] == pytest.approx(0.2) and config["maxOutputTokens"] == 5
    assert config["topP"] == pytest.approx(0.5) and config["topK"] == 7 and config["stopSequences"] == ["END"]
    assert sent["systemInstruction"]["parts"][0]["text"] == "You are terse."
    assert sent["contents"][-1]["parts"][0]["text"] == "Be brief"


def test_client_request_id_is_kept_when_sane(client):
    response = client.post("/gemini/generate", json=SPEC_BODY, headers={"X-Request-ID": "trace-12345678"})
    assert response.headers["X-Request-ID"] == "trace-12345678"
    hostile = client.post("/gemini/generate", json=SPEC_BODY, headers={"X-Request-ID": "bad id <script>"})
    assert hostile.headers["X-Request-ID"] != "bad id <script>" and len(hostile.headers["X-Request-ID"]) == 32


INVALID_BODIES = [
    ({}, "prompt"),
    ({"prompt": "just a string"}, "prompt"),
    ({"prompt": {}}, "prompt.text"),
    ({"prompt": {"text": ""}}, "prompt.text"),
    ({"prompt": {"text": 42}}, "prompt.text"),
    ({"prompt": {"text": None}}, "prompt.text"),
    ({"prompt": {"text": "hi", "extra": 1}}, "prompt"),
    ({"prompt": {"text": "hi"}, "generation_config": {"temperature": 2.5}}, "generation_config.temperature"),
    ({"prompt": {"text": "hi"}, "generation_config": {"temperature": -0.1}}, "generation_config.temperature"),
    ({"prompt": {"text": "hi"}, "generation_config": {"temperature": "hot"}}, "generation_config.temperature"),
    ({"prompt": {"text": "hi"}, "generation_config": {"temperature": True}}, "generation_config.temperature"),
    ({"prompt": {"text": "hi"}, "generation_config": {"max_output_tokens": 0}}, "generation_config.max_output_tokens"),
    ({"prompt": {"text": "hi"}, "generation_config": {"max_output_tokens": -5}}, "generation_config.max_output_tokens"),
    ({"prompt": {"text": "hi"}, "generation_config": {"max_output_tokens": 1.5}}, "generation_config.max_output_tokens"),
    ({"prompt": {"text": "hi"}, "generation_config": {"max_output_tokens": "100"}}, "generation_config.max_output_tokens"),
    ({"prompt": {"text": "hi"}, "generation_config": {"top_p": 1.5}}, "generation_config.top_p"),
    ({"prompt": {"text": "hi"}, "generation_config": {"top_k": 0}}, "generation_config.top_k"),
    ({"prompt": {"text": "hi"}, "generation_config": {"top_k": 2**40}}, "generation_config.top_k"),
    ({"prompt": {"text": "hi"}, "generation_config": {"stop_sequences": ["a"] * 6}}, "generation_config.stop_sequences"),
    ({"prompt": {"text": "hi"}, "generation_config": {"stop_sequences": "END"}}, "generation_config.stop_sequences"),
    ({"prompt": {"text": "hi"}, "generation_config": {"tempurature": 0.5}}, "generation_config"),
    ({"prompt": {"text": "hi"}, "generation_config": "warm"}, "generation_config"),
    ({"prompt": {"text": "hi"}, "model": 7}, "model"),
    ({"prompt": {"text": "hi"}, "system_instruction": ["x"]}, "system_instruction"),
]


@pytest.mark.parametrize("body,field", INVALID_BODIES, ids=[field for _, field in INVALID_BODIES])
def test_invalid_bodies_get_400_naming_the_field(client, emulator, body, field):
    response = client.post("/gemini/generate", json=body)
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert field in error["details"] or any(key.startswith(field) for key in error["details"])
    assert emulator.stats()["total"] == 0  # nothing invalid reaches Gemini


@pytest.mark.parametrize("body,code", [
    ({"prompt": {"text": "   \n"}}, "INVALID_REQUEST"),
    ({"prompt": {"text": "hi"}, "model": "gemini-1.0-ultra-secret"}, "MODEL_NOT_ALLOWED"),
    ({"prompt": {"text": "hi"}, "generation_config": {"max_output_tokens": 65536}}, "INVALID_REQUEST"),
    ({"prompt": {"text": "lone \ud83d surrogate"}}, "INVALID_REQUEST"),
    ({"prompt": {"text": "hi"}, "system_instruction": "\udc00"}, "INVALID_REQUEST"),
])
def test_checks_beyond_the_schema(make_app, emulator, body, code):
    client = make_app(MAX_OUTPUT_TOKENS_LIMIT=8192).test_client()
    response = client.post("/gemini/generate", json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert emulator.stats()["total"] == 0


def test_prompt_length_is_bounded(make_app, emulator):
    client = make_app(MAX_PROMPT_CHARS=10).test_client()
    response = client.post("/gemini/generate", json={"prompt": {"text": "x" * 11}})
    assert response.status_code == 400 and "10 characters" in response.json["error"]["message"]


@pytest.mark.parametrize("data,content_type,code", [
    ('{"prompt": {"text": "hi"', "application/json", "MALFORMED_JSON"),
    ("", "application/json", "MALFORMED_JSON"),
    ("prompt=hi", "application/x-www-form-urlencoded", "UNSUPPORTED_CONTENT_TYPE"),
    ('{"prompt": {"text": "hi"}}', "text/plain", "UNSUPPORTED_CONTENT_TYPE"),
    ("[1, 2]", "application/json", "INVALID_REQUEST"),
    ('"text"', "application/json", "INVALID_REQUEST"),
])
def test_unreadable_bodies_get_400(client, data, content_type, code):
    response = client.post("/gemini/generate", data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


def test_oversized_body_gets_413(make_app):
    client = make_app(MAX_CONTENT_LENGTH=2048).test_client()
    response = client.post("/gemini/generate", json={"prompt": {"text": "x" * 5000}})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_wrong_method_and_unknown_path_use_the_error_shape(client):
    wrong = client.get("/gemini/generate")
    assert wrong.status_code == 405 and wrong.json["error"]["code"] == "METHOD_NOT_ALLOWED"
    missing = client.get("/gemini/nothing-here")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "NOT_FOUND"


def test_many_requests_are_persisted(app, client):
    for number in range(25):
        body = {"prompt": {"text": f"question {number}"}, "generation_config": {"temperature": number / 25,
                                                                               "max_output_tokens": 50 + number}}
        assert client.post("/gemini/generate", json=body).status_code == 200
    client.post("/gemini/generate", json={"prompt": {"text": ""}})  # a failure is logged too
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert rows(url, "SELECT count(*) FROM metrics") == [(25,)]
    metric_rows = rows(url, "SELECT prompt_tokens, completion_tokens, total_tokens, temperature, max_output_tokens "
                            "FROM metrics ORDER BY id")
    assert [r[4] for r in metric_rows] == [50 + n for n in range(25)]
    assert [r[3] for r in metric_rows] == pytest.approx([n / 25 for n in range(25)])
    assert all(p > 0 and c > 0 and t == p + c for p, c, t, _, _ in metric_rows)
    log = rows(url, "SELECT status_code, error_code, route, metric_id IS NOT NULL FROM request_log ORDER BY id")
    assert len(log) == 26
    assert log[-1] == (400, "INVALID_REQUEST", "/gemini/generate", 0)
    assert all(entry[3] for entry in log[:25])
    assert rows(url, "SELECT count(*) FROM attempts") == [(25,)]


def test_metrics_table_has_exactly_the_spec_columns(app):
    columns = rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT name FROM pragma_table_info('metrics')")
    assert [c[0] for c in columns] == ["id", "timestamp", "prompt_tokens", "completion_tokens", "total_tokens",
                                       "temperature", "max_output_tokens"]


def test_sqlite_is_tuned_for_several_writers(app):
    from models import db

    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        finally:
            connection.close()
