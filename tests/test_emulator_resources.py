"""The emulator's stateful resources are each their key's project's, as at Google: google-genai, pointed
at the emulator with two keys, can use with key A what A made, and key B cannot see or touch it."""
import json

import pytest
import requests
from google import genai
from google.genai import errors, types
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.emulator.app import create_emulator
from tests.conftest import KEYS

MODEL = "gemini-2.5-flash"


def client(emulator, key):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emulator.url))


@pytest.fixture
def a(emulator):
    return client(emulator, KEYS[0])


@pytest.fixture
def b(emulator):
    return client(emulator, KEYS[1])


def refused(call, code):
    with pytest.raises(errors.APIError) as raised:
        call()
    assert raised.value.code == code
    return raised.value


def not_found(call):
    """The interactions client raises errors of its own, each with the HTTP status."""
    with pytest.raises(Exception) as raised:
        call()
    assert raised.value.status_code == 404


def upload(sdk, tmp_path, data, name="input.jsonl", mime="application/jsonl"):
    path = tmp_path / name
    path.write_bytes(data)
    return sdk.files.upload(file=str(path), config={"mime_type": mime, "display_name": name})


def test_files_are_their_keys_and_listed_a_page_at_a_time(a, b, emulator, tmp_path):
    made = [upload(a, tmp_path, f"line {n}".encode(), f"f{n}.txt", "text/plain") for n in range(3)]
    assert a.files.get(name=made[0].name).display_name == "f0.txt"
    refused(lambda: b.files.get(name=made[0].name), 403)
    refused(lambda: b.files.delete(name=made[0].name), 403)
    assert list(b.files.list()) == []
    pager = a.files.list(config={"page_size": 2})
    assert len(pager.page) == 2  # the rest comes on the next page, which iterating fetches
    assert sorted(f.name for f in pager) == sorted(f.name for f in made)
    # An uploaded file's bytes are not given back, as at Google: only generated files download.
    refused(lambda: a.files.download(file=made[0].name), 400)
    a.files.delete(name=made[0].name)
    refused(lambda: a.files.get(name=made[0].name), 403)
    owners = {r["name"]: r["key"] for r in emulator.control("resources")}
    assert owners[made[1].name] == KEYS[0][-4:] and made[0].name not in owners


def test_cached_contents_are_their_keys_patched_and_expire(a, b):
    cache = a.caches.create(model=MODEL, config={
        "contents": [types.Content(role="user", parts=[types.Part(text="a long document " * 50)])],
        "system_instruction": "Be brief.", "ttl": "300s", "display_name": "doc"})
    assert cache.name.startswith("cachedContents/") and cache.model == f"models/{MODEL}"
    assert cache.usage_metadata.total_token_count > 100 and cache.display_name == "doc"
    assert a.caches.get(name=cache.name).expire_time == cache.expire_time
    refused(lambda: b.caches.get(name=cache.name), 403)
    refused(lambda: b.caches.update(name=cache.name, config={"ttl": "60s"}), 403)
    assert list(b.caches.list()) == []
    longer = a.caches.update(name=cache.name, config={"ttl": "7200s"})
    assert longer.expire_time > cache.expire_time
    a.caches.create(model=MODEL, config={"contents": ["x"], "ttl": "300s"})
    pager = a.caches.list(config={"page_size": 1})
    assert len(pager.page) == 1 and len(list(pager)) == 2
    # An expire time in the past ends the cache at once: it is gone, as an expired cache is at Google.
    a.caches.update(name=cache.name, config={"expire_time": "2001-01-01T00:00:00Z"})
    refused(lambda: a.caches.get(name=cache.name), 403)
    refused(lambda: b.caches.delete(name=pager.page[0].name), 403)
    a.caches.delete(name=pager.page[0].name)
    assert list(a.caches.list()) == []


def test_an_inline_batch_moves_on_as_it_is_polled_and_gives_every_answer_with_its_usage(a, b, emulator):
    batch = a.batches.create(model=MODEL, src=[
        {"contents": [{"role": "user", "parts": [{"text": "first"}]}], "metadata": {"key": "one"}},
        {"contents": [{"role": "user", "parts": [{"text": "second"}]}]}], config={"display_name": "two"})
    assert batch.state == types.JobState.JOB_STATE_PENDING and batch.display_name == "two"
    refused(lambda: b.batches.get(name=batch.name), 404)
    assert list(b.batches.list()) == []
    assert a.batches.get(name=batch.name).state == types.JobState.JOB_STATE_RUNNING
    done = a.batches.get(name=batch.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time
    answers = done.dest.inlined_responses
    assert [r.response.text.split(": ", 1)[1].split(" ")[0] for r in answers] == ["first", "second"]
    assert all(r.response.usage_metadata.total_token_count > 0 for r in answers)
    assert answers[0].metadata == {"key": "one"}
    raw = requests.get(f"{emulator.url}/v1beta/{batch.name}", headers={"x-goog-api-key": KEYS[0]}, timeout=5).json()
    assert raw["done"] is True and raw["metadata"]["batchStats"]["successfulRequestCount"] == "2"
    assert raw["response"]["inlinedResponses"]["inlinedResponses"][1]["response"]["usageMetadata"]
    refused(lambda: b.batches.delete(name=batch.name), 404)
    a.batches.delete(name=batch.name)
    refused(lambda: a.batches.get(name=batch.name), 404)


def test_a_file_batch_reads_its_keys_file_and_answers_in_a_responses_file_of_that_key(a, b, emulator, tmp_path):
    lines = [{"key": f"r{n}", "request": {"contents": [{"parts": [{"text": f"question {n}"}]}]}} for n in range(3)]
    source = upload(a, tmp_path, "\n".join(json.dumps(line) for line in lines).encode())
    refused(lambda: b.batches.create(model=MODEL, src=source.name), 403)  # another project's file
    emulator.configure(batch_polls_to_finish=1)
    batch = a.batches.create(model=MODEL, src=source.name)
    done = a.batches.get(name=batch.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    results = [json.loads(line) for line in a.files.download(file=done.dest.file_name).decode().splitlines()]
    assert [r["key"] for r in results] == ["r0", "r1", "r2"]
    assert all(r["response"]["usageMetadata"]["totalTokenCount"] > 0 for r in results)
    refused(lambda: b.files.download(file=done.dest.file_name), 403)
    pager = a.batches.list(config={"page_size": 1})
    assert len(pager.page) == 1 and [j.name for j in pager] == [batch.name]


@pytest.mark.filterwarnings("ignore:batches.create_embeddings:google.genai._common.ExperimentalWarning")
def test_a_batch_can_be_cancelled_and_an_embedding_batch_gives_embeddings(a, emulator):
    batch = a.batches.create(model=MODEL, src=[{"contents": [{"parts": [{"text": "x"}]}]}])
    a.batches.cancel(name=batch.name)
    assert a.batches.get(name=batch.name).state == types.JobState.JOB_STATE_CANCELLED
    emulator.configure(batch_polls_to_finish=1)
    embedding = a.batches.create_embeddings(model="text-embedding-004", src={"inlined_requests": {
        "contents": [{"parts": [{"text": "embed me"}]}]}})
    done = a.batches.get(name=embedding.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert len(done.dest.inlined_embed_content_responses[0].response.embedding.values) == 768


def test_a_video_operation_ends_in_a_file_of_its_key_that_downloads(a, b, emulator):
    # google-genai 3.4.0 sends generate_videos only to Vertex, so the call is made as the REST API documents it.
    began = requests.post(f"{emulator.url}/v1beta/models/veo-3.0-generate-001:predictLongRunning", timeout=5,
                          headers={"x-goog-api-key": KEYS[0]}, json={"instances": [{"prompt": "a calm sea"}]})
    operation = types.GenerateVideosOperation(name=began.json()["name"])
    assert began.status_code == 200 and "done" not in began.json()
    assert operation.name.startswith("models/veo-3.0-generate-001/operations/")
    refused(lambda: b.operations.get(operation), 404)
    assert not a.operations.get(operation).done  # done on the second read: operation_polls_to_finish
    done = a.operations.get(operation)
    assert done.done and len(done.response.generated_videos) == 1
    uri = done.response.generated_videos[0].video.uri
    name = "files/" + uri.split("/files/")[1].split(":")[0]
    video = a.files.download(file=name)
    assert video.startswith(b"\x00\x00\x00\x18ftyp")
    fetched = requests.get(uri, headers={"x-goog-api-key": KEYS[0]}, timeout=5)
    assert fetched.status_code == 200 and fetched.content == video
    assert requests.get(uri, headers={"x-goog-api-key": KEYS[1]}, timeout=5).status_code == 403


def test_file_search_stores_and_their_documents_are_their_keys(a, b, emulator, tmp_path):
    emulator.configure(operation_polls_to_finish=1)
    store = a.file_search_stores.create(config={"display_name": "notes"})
    refused(lambda: b.file_search_stores.get(name=store.name), 403)
    assert list(b.file_search_stores.list()) == []
    path = tmp_path / "tide.txt"
    path.write_text("The tide is high.")
    uploading = a.file_search_stores.upload_to_file_search_store(
        file_search_store_name=store.name, file=str(path), config={"mime_type": "text/plain"})
    uploaded = a.operations.get(uploading)
    assert uploaded.done and uploaded.response.document_name.startswith(store.name + "/documents/")
    refused(lambda: b.file_search_stores.upload_to_file_search_store(
        file_search_store_name=store.name, file=str(path), config={"mime_type": "text/plain"}), 403)
    source = upload(a, tmp_path, b"imported text", "imported.txt", "text/plain")
    refused(lambda: b.file_search_stores.import_file(file_search_store_name=store.name, file_name=source.name), 403)
    imported = a.operations.get(a.file_search_stores.import_file(file_search_store_name=store.name,
                                                                  file_name=source.name))
    assert imported.done
    documents = list(a.file_search_stores.documents.list(parent=store.name))
    assert len(documents) == 2 and a.file_search_stores.get(name=store.name).active_documents_count == 2
    refused(lambda: b.file_search_stores.documents.get(name=documents[0].name), 403)
    a.file_search_stores.documents.delete(name=documents[0].name)
    refused(lambda: a.file_search_stores.delete(name=store.name), 400)  # not empty, and no force
    a.file_search_stores.delete(name=store.name, config={"force": True})
    refused(lambda: a.file_search_stores.get(name=store.name), 403)
    assert not [r for r in emulator.control("resources") if r["name"].startswith(store.name)]


def test_interactions_follow_their_previous_one_of_the_same_key(a, b):
    first = a.interactions.create(model=MODEL, input="Name a sea.")
    assert first.status == "completed" and "Name a sea." in first.steps[-1].content[0].text
    assert first.usage.total_tokens > 0
    second = a.interactions.create(model=MODEL, input="And another?", previous_interaction_id=first.id)
    assert second.previous_interaction_id == first.id
    assert second.usage.total_input_tokens > first.usage.total_input_tokens  # the conversation so far
    not_found(lambda: b.interactions.create(model=MODEL, input="Go on.", previous_interaction_id=first.id))
    not_found(lambda: b.interactions.get(first.id))
    not_found(lambda: b.interactions.delete(first.id))
    assert a.interactions.get(first.id).output_text == first.output_text
    a.interactions.delete(first.id)
    not_found(lambda: a.interactions.get(first.id))


def test_a_background_interaction_completes_as_it_is_polled_and_a_streamed_one_arrives_as_events(a):
    started = a.interactions.create(agent="deep-research-pro-preview-12-2025", input="Research tides.",
                                    background=True)
    assert started.status == "in_progress" and not started.usage
    finished = a.interactions.get(started.id)
    assert finished.status == "completed" and finished.output_text.startswith("Emulated gemini-2.5-pro")
    cancelled = a.interactions.create(agent="deep-research-pro-preview-12-2025", input="More.", background=True)
    assert a.interactions.cancel(cancelled.id).status == "cancelled"
    assert a.interactions.get(cancelled.id).status == "cancelled"
    events = list(a.interactions.create(model=MODEL, input="Stream this please.", stream=True))
    kinds = [event.event_type for event in events]
    assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed"
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta")
    assert text.startswith("Emulated gemini-2.5-flash answer to: Stream this please.")
    assert events[-1].interaction.usage.total_tokens > 0


def test_resources_show_their_owner_by_its_last_four_characters_and_reset_clears_them(a, b, emulator):
    a.caches.create(model=MODEL, config={"contents": ["x"], "ttl": "300s"})
    b.interactions.create(model=MODEL, input="hi")
    shown = emulator.control("resources")
    assert sorted(r["key"] for r in shown) == sorted([KEYS[0][-4:], KEYS[1][-4:]])
    assert KEYS[0] not in json.dumps(shown) and KEYS[1] not in json.dumps(shown)
    emulator.reset()
    assert emulator.control("resources") == []


def test_keys_of_one_project_share_its_resources(a, b, emulator):
    emulator.configure(projects={KEYS[0]: "shared", KEYS[1]: "shared"})
    cache = a.caches.create(model=MODEL, config={"contents": ["x"], "ttl": "300s"})
    assert b.caches.get(name=cache.name).name == cache.name
    assert [c.name for c in b.caches.list()] == [cache.name]
    third = client(emulator, KEYS[2])
    refused(lambda: third.caches.get(name=cache.name), 403)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
FIELDS = ["model", "agent", "input", "contents", "ttl", "expireTime", "batch", "inputConfig", "requests",
          "fileName", "instances", "parameters", "generation_config", "previous_interaction_id", "displayName"]
BODIES = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4))
CREATES = ["/v1beta/cachedContents", "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
           "/v1beta/models/text-embedding-004:asyncBatchEmbedContent", "/v1beta/interactions",
           "/v1beta/models/veo-3.0-generate-001:predictLongRunning", "/v1beta/fileSearchStores"]


@pytest.fixture(scope="module")
def local():
    return create_emulator(valid_keys=KEYS).test_client()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(CREATES), body=BODIES)
def test_any_create_body_is_answered_or_refused_never_a_crash(local, path, body):
    response = local.post(path, json=body, headers={"x-goog-api-key": KEYS[0]})
    assert response.status_code in (200, 400, 403, 404), response.get_data(as_text=True)
    assert "error" in response.get_json() or response.status_code == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["files", "cachedContents", "batches", "fileSearchStores"]),
       size=st.text(max_size=6), token=st.text(max_size=6))
def test_any_page_size_and_token_is_a_page_or_google_s_400(local, kind, size, token):
    response = local.get(f"/v1beta/{kind}", query_string={"pageSize": size, "pageToken": token},
                         headers={"x-goog-api-key": KEYS[0]})
    assert response.status_code in (200, 400)
