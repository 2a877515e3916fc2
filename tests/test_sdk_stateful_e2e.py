"""google-genai, unchanged, on Gemini's stateful APIs through the proxy (two workers, two server keys, client
keys on): caches, batches, files and generated videos, interactions. Each resource is used many times, so that a round robin over the two keys would reach the
wrong key if the proxy did not keep a resource on the key that made it; and client B cannot reach client A's."""
import json
import re

import pytest
import requests
from google import genai
from google.genai import errors, types

from tests.conftest import KEYS, MODELS

pytestmark = pytest.mark.e2e

MODEL = MODELS[0]
GEMINI3 = "gemini-3.1-pro-preview"  # the Gemini CLI's default model: thought signatures, JSON mode
VIDEO_MODEL = "veo-3.1-generate-preview"
CLIENT_A, CLIENT_B = "sdk-client-a-0123456789", "sdk-client-b-0123456789"
USES = 9  # more than enough for a round robin over two keys to land on the other one


@pytest.fixture
def server(gunicorn):
    return gunicorn(GEMINI_API_KEY=f"{KEYS[0]},{KEYS[1]}", API_KEYS=f"{CLIENT_A},{CLIENT_B}", WEB_CONCURRENCY=2)


def sdk(server, key):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


def refused_as_missing(call):
    """What client B sees of client A's resource: Google's 404, as for one that never existed. (The SDK's
    interactions raise errors of their own kind, with `status_code` where the rest have `code`.)"""
    with pytest.raises(Exception) as raised:
        call()
    status = getattr(raised.value, "code", None) or getattr(raised.value, "status_code", None)
    assert status == 404, repr(raised.value)
    return raised.value


def keys_used(emulator, action):
    return {r["key"] for r in emulator.requests() if r["action"] == action}


def test_a_cache_is_created_used_listed_and_deleted_on_one_key(server, emulator):
    a, b = sdk(server, CLIENT_A), sdk(server, CLIENT_B)
    cache = a.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
        display_name="handbook", ttl="600s", system_instruction="Answer from the handbook.",
        contents=[types.Content(role="user", parts=[types.Part(text="The handbook. " * 800)])]))
    assert cache.name.startswith("cachedContents/") and cache.display_name == "handbook"

    for turn in range(USES):
        answer = a.models.generate_content(model=MODEL, contents=f"Question {turn}?",
                                           config=types.GenerateContentConfig(cached_content=cache.name))
        assert answer.text and answer.usage_metadata.cached_content_token_count > 0
    # Every generation reached the key that holds the cache (the emulator says NOT_FOUND on the other).
    assert len(keys_used(emulator, "generateContent")) == 1

    assert a.caches.get(name=cache.name).display_name == "handbook"
    assert cache.name in [c.name for c in a.caches.list()]
    assert cache.name not in [c.name for c in b.caches.list()]
    refused_as_missing(lambda: b.caches.get(name=cache.name))
    refused_as_missing(lambda: b.caches.delete(name=cache.name))
    refused_as_missing(lambda: b.models.generate_content(
        model=MODEL, contents="Hi", config=types.GenerateContentConfig(cached_content=cache.name)))

    a.caches.delete(name=cache.name)
    refused_as_missing(lambda: a.caches.get(name=cache.name))


def test_an_inline_batch_runs_to_its_end_and_gives_its_results(server, emulator):
    a, b = sdk(server, CLIENT_A), sdk(server, CLIENT_B)
    questions = ["Why is the sky blue?", "Why is the sea salty?"]
    job = a.batches.create(model=MODEL, src=[{"contents": [{"role": "user", "parts": [{"text": q}]}]}
                                             for q in questions], config={"display_name": "questions"})
    assert job.name.startswith("batches/")
    polls = []
    while len(polls) < USES:  # the emulator finishes a batch after a few reads; read on past its end
        polls.append(a.batches.get(name=job.name))
    assert polls[-1].state == types.JobState.JOB_STATE_SUCCEEDED, polls[-1]
    results = polls[-1].dest.inlined_responses
    assert [q in r.response.text for q, r in zip(questions, results)] == [True, True]
    assert job.name in [j.name for j in a.batches.list()]
    assert job.name not in [j.name for j in b.batches.list()]
    refused_as_missing(lambda: b.batches.get(name=job.name))
    refused_as_missing(lambda: b.batches.delete(name=job.name))
    assert a.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED


def test_an_uploaded_file_and_a_generated_video_through_files_and_download(server, emulator, tmp_path):
    a, b = sdk(server, CLIENT_A), sdk(server, CLIENT_B)
    path = tmp_path / "notes.txt"
    path.write_bytes(b"Notes to keep. " * 100)
    uploaded = a.files.upload(file=str(path), config={"mime_type": "text/plain"})
    for _ in range(USES):
        assert a.files.get(name=uploaded.name).size_bytes == 1500
    assert uploaded.name in [f.name for f in a.files.list()]
    assert uploaded.name not in [f.name for f in b.files.list()]
    refused_as_missing(lambda: b.files.get(name=uploaded.name))
    refused_as_missing(lambda: b.files.delete(name=uploaded.name))
    # As at Google, only generated files can be downloaded: the refusal is Gemini's own, unchanged.
    with pytest.raises(errors.ClientError) as raised:
        a.files.download(file=uploaded.name)
    assert raised.value.code == 400 and "Only generated files can be downloaded" in str(raised.value)

    # google-genai 3.4.0 makes videos only on Vertex (generate_videos raises in Developer API mode), so
    # the video is asked for as any other client of Gemini's REST API asks; the SDK then follows it.
    began = requests.post(f"{server.url}/v1beta/models/{VIDEO_MODEL}:predictLongRunning", timeout=30,
                          headers={"x-goog-api-key": CLIENT_A},
                          json={"instances": [{"prompt": "A lighthouse at dusk"}]})
    assert began.status_code == 200, began.text
    operation = types.GenerateVideosOperation(name=began.json()["name"])
    for _ in range(USES):
        operation = a.operations.get(operation)
    assert operation.done, operation
    video = operation.response.generated_videos[0].video
    # The SDK takes a file's name out of Google's https:// URI, never out of an http:// one such as the
    # emulator's: the name, as the SDK would take it, is what it downloads by, through its base URL.
    name = "files/" + re.match(r".*/files/([a-z0-9]+)", video.uri).group(1)
    content = a.files.download(file=name)
    assert content.startswith(b"\x00\x00\x00\x18ftyp")
    refused_as_missing(lambda: b.files.download(file=name))
    refused_as_missing(lambda: b.operations.get(operation))
    a.files.delete(name=uploaded.name)


def test_interactions_follow_on_from_one_another_on_one_key(server, emulator):
    a, b = sdk(server, CLIENT_A), sdk(server, CLIENT_B)
    first = a.interactions.create(model=MODEL, input="My name is Ada.")
    assert first.id and first.status == "completed" and first.output_text
    previous = first
    for turn in range(USES):
        previous = a.interactions.create(model=MODEL, input=f"What is my name? ({turn})",
                                         previous_interaction_id=previous.id)
        assert previous.output_text
    assert a.interactions.get(previous.id).previous_interaction_id is not None
    refused_as_missing(lambda: b.interactions.get(first.id))
    refused_as_missing(lambda: b.interactions.create(model=MODEL, input="And mine?", previous_interaction_id=first.id))
    refused_as_missing(lambda: b.interactions.delete(first.id))
    a.interactions.delete(first.id)
    refused_as_missing(lambda: a.interactions.get(first.id))


def test_a_file_search_store_its_uploads_documents_and_searches_stay_on_one_key(server, emulator, tmp_path):
    a, b = sdk(server, CLIENT_A), sdk(server, CLIENT_B)
    store = a.file_search_stores.create(config={"display_name": "handbook"})
    path = tmp_path / "handbook.txt"
    path.write_bytes(b"Holidays are booked a month ahead. " * 40)
    operation = a.file_search_stores.upload_to_file_search_store(
        file=str(path), file_search_store_name=store.name, config={"mime_type": "text/plain"})
    # Google names an upload's operation under the store: fileSearchStores/{s}/upload/operations/{o}.
    assert "/upload/operations/" in operation.name
    for _ in range(USES):
        operation = a.operations.get(operation)
    assert operation.done, operation
    documents = list(a.file_search_stores.documents.list(parent=store.name))
    assert [d.name for d in documents] == [operation.response.document_name]
    for _ in range(USES):
        assert a.file_search_stores.get(name=store.name).active_documents_count == 1
    search = types.Tool(file_search=types.FileSearch(file_search_store_names=[store.name]))
    for _ in range(3):
        answer = a.models.generate_content(model=MODEL, contents="When are holidays booked?",
                                           config=types.GenerateContentConfig(tools=[search]))
        assert answer.text
    assert store.name in [s.name for s in a.file_search_stores.list()]
    assert store.name not in [s.name for s in b.file_search_stores.list()]
    refused_as_missing(lambda: b.file_search_stores.get(name=store.name))
    refused_as_missing(lambda: b.file_search_stores.documents.list(parent=store.name).page)
    refused_as_missing(lambda: b.operations.get(operation))
    refused_as_missing(lambda: b.models.generate_content(
        model=MODEL, contents="When?", config=types.GenerateContentConfig(tools=[search])))
    a.file_search_stores.delete(name=store.name, config={"force": True})
    refused_as_missing(lambda: a.file_search_stores.get(name=store.name))
