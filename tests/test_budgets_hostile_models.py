"""A client key's model allowlist attacked from every entrance: a model outside it is refused however it is
spelled or wherever it is named (path, body, token, agent), and fallback never leaves it."""
import pytest

from proxy.access import clients
from tests.conftest import MODELS

ALLOWED, OTHER = MODELS[1], MODELS[0]
BODY = {"contents": [{"parts": [{"text": "hello"}]}]}


@pytest.fixture
def setup(make_app):
    app = make_app()
    with app.app_context():
        _, secret = clients.create("narrow", models=[ALLOWED])
    return app.test_client(), {"X-API-KEY": secret}


def refused(response):
    assert response.status_code in (400, 403, 404), (response.status_code, response.get_data(as_text=True)[:300])
    return response


@pytest.mark.parametrize("path", [
    f"/v1beta/models/{OTHER}:generateContent", f"/v1beta/models/{OTHER}:streamGenerateContent",
    f"/v1beta/models/{OTHER}:countTokens", f"/v1beta/models/{OTHER}:embedContent",
    f"/v1beta/models/{OTHER}:batchEmbedContents", f"/v1beta/models/{OTHER}:batchGenerateContent",
    f"/v1/models/{OTHER}:generateContent", f"/v1beta/models/{OTHER.upper()}:generateContent",
    f"/v1beta/models%2F{OTHER}:generateContent", f"/v1beta/models/{OTHER.replace('.', '%2e')}:generateContent",
    f"/v1beta/models/{ALLOWED}/../{OTHER}:generateContent", f"/v1beta/tunedModels/{OTHER}:generateContent",
    f"/v1beta/models/{OTHER}-001:generateContent",
])
def test_a_path_naming_another_model_is_refused(setup, path):
    client, headers = setup
    refused(client.post(path, json=BODY, headers=headers))


@pytest.mark.parametrize("path, body", [
    ("/v1beta/openai/chat/completions", {"model": OTHER, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1beta/openai/chat/completions", {"model": f"models/{OTHER}", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1beta/openai/embeddings", {"model": OTHER, "input": "hi"}),
    ("/v1beta/cachedContents", {"model": f"models/{OTHER}", "contents": BODY["contents"]}),
    ("/v1beta/interactions", {"model": OTHER, "input": "hi"}),
])
def test_a_body_naming_another_model_is_refused(setup, path, body):
    client, headers = setup
    refused(client.post(path, json=body, headers=headers))


def test_an_agent_is_no_way_around_the_allowlist(setup):
    """An interaction names a model or an agent: a key limited to some models may not run an agent instead."""
    client, headers = setup
    response = refused(client.post("/v1beta/interactions", json={"agent": "deep-research-pro-preview", "input": "hi"},
                                   headers=headers))
    assert response.status_code in (400, 403)


@pytest.mark.parametrize("setup_body", [
    {"bidiGenerateContentSetup": {"model": f"models/{OTHER}"}},
    {"bidiGenerateContentSetup": {"setup": {"model": f"models/{OTHER}"}}},
    {"bidiGenerateContentSetup": {"model": OTHER}},
])
def test_an_ephemeral_token_cannot_lock_another_model(setup, setup_body):
    """A Live token locks the model its sessions use, whatever their setup names: minting one for a model
    outside the allowlist is refused, or the constrained endpoint would serve it."""
    client, headers = setup
    response = refused(client.post("/v1alpha/auth_tokens", json={"uses": 1, **setup_body}, headers=headers))
    assert response.status_code == 403


def test_an_ephemeral_token_for_an_allowed_model_is_minted(setup):
    client, headers = setup
    minted = client.post("/v1alpha/auth_tokens", json={"uses": 1, "bidiGenerateContentSetup": {
        "model": f"models/{ALLOWED}"}}, headers=headers)
    assert minted.status_code == 200 and minted.json["name"].startswith("auth_tokens/")


@pytest.mark.parametrize("api, body", [
    ("/gemini/generate", {"prompt": {"text": "hi"}, "model": OTHER}),
    ("/gemini/generate", {"prompt": {"text": "hi"}, "model": f"models/{OTHER}"}),
])
def test_the_proxy_apis_refuse_another_model(setup, api, body):
    client, headers = setup
    refused(client.post(api, json=body, headers=headers))


def test_the_default_model_falls_back_only_within_the_allowlist(setup):
    client, headers = setup
    answer = client.post("/gemini/generate", json={"prompt": {"text": "hi"}}, headers=headers)
    assert answer.status_code == 200 and answer.json["model"] == ALLOWED
