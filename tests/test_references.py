"""What a native call names of Gemini's stateful resources, read from its parsed path, body and answer."""
import json

import pytest
from hypothesis import given, strategies as st

from proxy.wire import references, routes
from proxy.wire.references import BadReference, SignatureScanner, signature_digest

NAMES = st.from_regex(routes.NAME, fullmatch=True)


def route(path):
    return routes.parse(path)


@pytest.mark.parametrize("path, named", [
    ("/v1beta/cachedContents/abc", "cachedContents/abc"),
    ("/v1beta/batches/b1:cancel", "batches/b1"),
    ("/v1beta/interactions/i1/cancel", "interactions/i1"),
    ("/v1beta/fileSearchStores/s/documents/d", "fileSearchStores/s/documents/d"),
    ("/v1beta/fileSearchStores/s/upload/operations/o", "fileSearchStores/s/upload/operations/o"),
    ("/v1beta/models/veo-3.1-generate-preview/operations/op1", "models/veo-3.1-generate-preview/operations/op1"),
    ("/download/v1beta/files/f1:download", "files/f1"),
    ("/v1beta/tunedModels/t1:generateContent", "tunedModels/t1"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", None),
    ("/v1beta/models/gemini-2.5-flash", None),
    ("/v1beta/cachedContents", None),
    ("/v1beta/openai/models/gemini-2.5-flash", None),
])
def test_the_path_names_the_resource_it_reaches(path, named):
    assert references.path_resource(route(path)) == named


def test_what_holds_a_nested_resource_is_its_parents_owner_too():
    assert references.owners_of("fileSearchStores/s/documents/d") == ["fileSearchStores/s/documents/d",
                                                                      "fileSearchStores/s"]
    assert references.owners_of("fileSearchStores/s/upload/operations/o") == [
        "fileSearchStores/s/upload/operations/o", "fileSearchStores/s"]
    assert references.owners_of("models/veo/operations/op") == ["models/veo/operations/op"]
    assert references.owners_of("cachedContents/c") == ["cachedContents/c"]


@pytest.mark.parametrize("path", [
    "/v1beta/upload/operations/o",  # only under a resource
    "/v1beta/fileSearchStores/s/upload%2Foperations/o",  # an encoded slash joins nothing
    "/v1beta/fileSearchStores/s/upload/documents/d",
])
def test_two_word_collections_are_only_gemini_s_own(path):
    with pytest.raises(routes.BadRoute):
        route(path)


@pytest.mark.parametrize("path, method, listed", [
    ("/v1beta/files", "GET", (None, "files")),
    ("/v1beta/cachedContents", "GET", (None, "cachedContents")),
    ("/v1beta/fileSearchStores/s/documents", "GET", ("fileSearchStores/s", "documents")),
    ("/v1beta/cachedContents", "POST", None),
    ("/v1beta/models", "GET", None),
    ("/v1beta/files/f1", "GET", None),
])
def test_list_calls_are_told_apart(path, method, listed):
    assert references.listing(route(path), method) == listed


def test_a_body_names_caches_files_stores_interactions_and_signatures():
    body = {"cachedContent": "cachedContents/c1", "contents": [{"parts": [
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/f1", "mimeType": "x"}},
        {"file_data": {"file_uri": "files/f2"}},
        {"fileData": {"fileUri": "https://www.youtube.com/watch?v=abc"}},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"}]}],
        "tools": [{"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/s1", "fileSearchStores/s2"]}}],
        "previous_interaction_id": "v1_abc"}
    named = references.body_references(body)
    assert set(named.resources) == {"cachedContents/c1", "files/f1", "files/f2", "fileSearchStores/s1",
                                    "fileSearchStores/s2", "interactions/v1_abc"}
    assert named.signatures == (signature_digest("c2lnbmF0dXJl"),)


def test_a_batch_names_its_input_file():
    body = {"batch": {"input_config": {"file_name": "files/input1"}}}
    assert references.body_references(body).resources == ("files/input1",)


@given(st.one_of(st.text(max_size=80), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3)))
def test_a_reference_field_holding_anything_but_a_name_is_refused_or_a_name(value):
    try:
        named = references.body_references({"cachedContent": value})
    except BadReference:
        return
    (name,) = named.resources
    assert name.startswith("cachedContents/") and routes.NAME.fullmatch(name.split("/", 1)[1])
    assert ".." not in name.split("/")


@given(st.recursive(st.one_of(st.text(max_size=10), st.integers(), st.none()),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30))
def test_any_json_body_is_read_without_error_or_refused(body):
    try:
        named = references.body_references(body)
    except BadReference:
        return
    for name in named.resources:
        kind, _, rest = name.partition("/")
        assert kind in references.STATEFUL and routes.NAME.fullmatch(rest)


@pytest.mark.parametrize("path, answer, made", [
    ("/v1beta/cachedContents", {"name": "cachedContents/c1", "model": "models/m"}, ["cachedContents/c1"]),
    ("/v1beta/models/m:batchGenerateContent", {"name": "batches/b1", "metadata": {}}, ["batches/b1"]),
    ("/v1beta/models/veo:predictLongRunning", {"name": "models/veo/operations/o1"}, ["models/veo/operations/o1"]),
    ("/upload/v1beta/files", {"file": {"name": "files/f1"}}, ["files/f1"]),
    ("/v1beta/interactions", {"id": "v1_i1", "status": "completed"}, ["interactions/v1_i1"]),
    ("/v1beta/models/m:generateContent", {"candidates": []}, []),
    ("/v1beta/cachedContents", {"name": "../../models/x"}, []),
])
def test_an_answer_names_what_it_made(path, answer, made):
    assert references.created(route(path), answer) == made


def test_an_answer_hands_out_the_files_it_points_at():
    answer = {"name": "batches/b1", "done": True, "response": {"responsesFile": "files/out1"},
              "generateVideoResponse": {"generatedSamples": [
                  {"video": {"uri": "https://generativelanguage.googleapis.com/v1beta/files/v1:download?alt=media"}}]}}
    assert sorted(references.handed_out(answer)) == ["files/out1", "files/v1"]


@given(signatures=st.lists(st.text("ABCDEFabcdef0123456789+/=", min_size=1, max_size=300), min_size=1, max_size=4),
       cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=12))
def test_signatures_are_found_however_the_stream_is_cut(signatures, cuts):
    chunks = [{"candidates": [{"content": {"parts": [{"text": "x", "thoughtSignature": signature}]}}]}
              for signature in signatures]
    data = ("data: " + "\r\n\r\ndata: ".join(json.dumps(chunk) for chunk in chunks)).encode()
    scanner, start = SignatureScanner(), 0
    for cut in sorted(set(cuts)):
        scanner.feed(data[start:cut])
        start = max(start, cut)
    scanner.feed(data[start:])
    assert scanner.digests() == list(dict.fromkeys(signature_digest(s) for s in signatures))


@given(st.dictionaries(st.text(max_size=6), st.integers(), min_size=1, max_size=5), st.data())
def test_a_body_that_repeats_a_field_is_refused_since_parsers_disagree_on_which_wins(fields, data):
    from proxy.wire import jsonbody
    name = data.draw(st.sampled_from(sorted(fields)))
    members = [json.dumps(key) + ":" + str(value) for key, value in fields.items()] + [json.dumps(name) + ":0"]
    with pytest.raises(jsonbody.BadJson, match="repeats the field"):
        jsonbody.loads("{" + ",".join(members) + "}")
    assert jsonbody.loads(json.dumps(fields)) == fields


@given(st.binary(min_size=1, max_size=64))
def test_a_signature_is_known_in_either_base64_alphabet_padded_or_not(raw):
    import base64
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    assert signature_digest(standard) == signature_digest(urlsafe) == signature_digest(urlsafe.rstrip("="))
    assert signature_digest(standard) != signature_digest(base64.b64encode(raw + b"x").decode())
