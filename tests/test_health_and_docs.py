"""GET /health, and /docs with /swagger.json as the contract the code is held to."""
import jsonschema
import pytest

from tests.conftest import KEYS, MODELS


def test_health_reports_status_without_secrets(make_app):
    client = make_app(GEMINI_API_KEYS=KEYS).test_client()
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok" and body["database"] == {"reachable": True}
    assert body["api_key_configured"] is True and body["api_keys"] == 3
    assert body["models"] == MODELS and body["version"] and body["uptime_seconds"] >= 0
    assert not any(key in response.get_data(as_text=True) for key in KEYS)


def test_docs_serve_swagger_ui(client):
    response = client.get("/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()
    assert client.get("/").headers["Location"].endswith("/docs")


def test_spec_documents_every_endpoint_with_models_and_errors(client):
    spec = client.get("/swagger.json").json
    generate = spec["paths"]["/gemini/generate"]["post"]
    assert generate["summary"]
    assert {"200", "400", "413", "422", "429", "502", "503", "504"} <= set(generate["responses"])
    body = next(p for p in generate["parameters"] if p["in"] == "body")
    request_model = spec["definitions"][body["schema"]["$ref"].split("/")[-1]]
    assert request_model["required"] == ["prompt"]
    assert all("description" in field for field in request_model["properties"].values())
    assert "/health" in spec["paths"]


def _schema_for(spec, path, method, status):
    schema = spec["paths"][path][method]["responses"][str(status)]["schema"]
    return {**schema, "definitions": spec["definitions"]}


@pytest.mark.parametrize("body,status", [
    ({"prompt": {"text": "hello"}}, 200),
    ({"prompt": {"text": ""}}, 400),
    ({"prompt": {"text": "[[block-prompt]]"}}, 422),
])
def test_responses_conform_to_the_documented_schema(client, body, status):
    spec = client.get("/swagger.json").json
    response = client.post("/gemini/generate", json=body)
    assert response.status_code == status
    jsonschema.validate(response.json, _schema_for(spec, "/gemini/generate", "post", status))


def test_health_conforms_to_its_schema(client):
    spec = client.get("/swagger.json").json
    jsonschema.validate(client.get("/health").json, _schema_for(spec, "/health", "get", 200))
