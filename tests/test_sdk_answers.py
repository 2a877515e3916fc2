"""The SDK's answers read by proxy.upstream.sdk_answers: the same message, or the same refusal, as json_format's."""
import json
import math

import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, example, given, settings, strategies as st

from proxy.upstream import gemini_sdk, sdk_answers

protos = gemini_sdk.protos
ANSWERS = [protos.GenerateContentResponse.pb(), protos.CountTokensResponse.pb()]

_ODD_TEXT = st.text(st.characters(codec=None), max_size=6) | st.sampled_from(["", "\ud800", "a\udfff", "\U0001F600"])
odd = (st.none() | st.booleans() | st.integers() | st.sampled_from([2**31, -(2**31) - 1, 2**32, 2**64, 10**400])
       | st.floats() | st.sampled_from([1.0, 3.5e38, -3.5e38, 1e308]) | _ODD_TEXT
       | st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "12", " 12", "1e3", "true", "STOP", "[x]"])
       | st.lists(st.integers(), max_size=2) | st.just({}))


def _scalar(field):
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        names = [value.name for value in field.enum_type.values]
        good = st.sampled_from(names) | st.sampled_from([value.number for value in field.enum_type.values])
        return good | st.sampled_from(["NOT_A_REASON", "1", 99, True])
    if kind in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
                FieldDescriptor.CPPTYPE_UINT64):
        return st.integers(-5, 2**31 + 5) | st.integers().map(str) | st.sampled_from([2.0, 2.5, 2**63, -1])
    if kind in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10, 10) | st.sampled_from(
            [3.4028234663852886e38, 3.402823466385289e38, 1e39, -1e39, 5e-324, "NaN", "1.5"])
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans() | st.sampled_from(["true", 1])
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.sampled_from(["aGk=", "aGk", "", "!!"])
    return st.text(max_size=8) | _ODD_TEXT


_rarely = st.integers(0, 9).map(lambda n: n == 0)  # one value in ten is off its field's type


def _value(field, depth):
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            return st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2)
        if field.message_type.full_name.startswith("google.protobuf."):
            return st.dictionaries(st.text(max_size=3), st.integers() | st.none(), max_size=2) | st.none()
        one = answers(field.message_type, depth + 1)
    else:
        one = _scalar(field)
    if field.label == FieldDescriptor.LABEL_REPEATED:
        one = st.lists(one, max_size=3)
    return st.tuples(one, _rarely, odd).map(lambda each: each[2] if each[1] else each[0])


def answers(descriptor, depth=0):
    """JSON objects of the message's shape (by JSON or proto names), now and then off it."""
    if depth > 4:
        return st.just({})
    fields = {}
    for field in descriptor.fields:
        names = st.sampled_from(sorted({field.json_name, field.name}))
        fields[field.name] = st.tuples(names, _value(field, depth))
    unknown = st.sampled_from(["modelVersion", "responseId", "promptTokensDetails", "thoughtsTokenCount", "[ext]",
                               "data", "kind"])
    extra = st.lists(st.tuples(unknown, odd), max_size=2)
    return st.tuples(st.fixed_dictionaries({}, optional=fields), extra).map(
        lambda each: dict([*each[0].values(), *each[1]]))


def _outcome(parse, descriptor, text):
    message = message_factory.GetMessageClass(descriptor)()
    try:
        parse(text, message, ignore_unknown_fields=True)
    except Exception as exc:  # json_format refuses with a ParseError; the reading must refuse as it does
        return type(exc), str(exc)
    return message.SerializeToString(deterministic=True), str(message)


def _same(descriptor, text):
    assert _outcome(sdk_answers.parse, descriptor, text) == _outcome(json_format.Parse, descriptor, text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(ANSWERS).flatmap(lambda cls: st.tuples(st.just(cls.DESCRIPTOR), answers(cls.DESCRIPTOR))),
       st.booleans())
def test_the_same_message_or_refusal_as_json_format(case, as_bytes):
    descriptor, answer = case
    text = json.dumps(answer, allow_nan=True)
    _same(descriptor, text.encode("utf-8", "surrogatepass") if as_bytes else text)


GENERATE = protos.GenerateContentResponse.pb().DESCRIPTOR


@pytest.mark.parametrize("text", [
    '{"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}], '
    '"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}, '
    '"modelVersion": "gemini-2.5-flash", "responseId": "abc"}',
    '{"usageMetadata": {}}', '{"candidates": [{}]}', '{"candidates": [{"finishReason": 99}]}',
    '{"candidates": [], "candidates": []}', '{"candidates": [{"index": 1, "index": 2}]}',
    '{"candidates": [{"tokenCount": 1, "token_count": 2}]}', '{"usageMetadata": {"promptTokenCount": "7"}}',
    '{"candidates": [{"content": {"parts": [{"text": "a", "inlineData": {"data": "aGk="}}]}}]}',
    '{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": [1, null]}}}]}}]}',
    '{"candidates": [{"avgLogprobs": NaN}]}', '{"candidates": [{"avgLogprobs": 1e400}]}',
    '{"candidates": [{"content": {"parts": [{"text": "\\ud800"}]}}]}', '{"promptFeedback": {"blockReason": "NEW"}}',
    '{"candidates": null}', '[]', '"x"', '', '\ufeff{}', '{"usageMetadata": {"promptTokenCount": 1.0}}',
    '{"candidates": [{"groundingMetadata": {"groundingSupports": [{"confidenceScores": [1e39]}]}}]}',
])
def test_answers_that_tell_the_two_apart(text):
    _same(GENERATE, text)
    _same(GENERATE, text.encode("utf-8", "surrogatepass"))


def test_a_usual_answer_is_read_without_json_format(monkeypatch):
    monkeypatch.setattr(json_format, "Parse", lambda *args, **kwargs: pytest.fail("json_format read it"))
    message = protos.GenerateContentResponse.pb()()
    sdk_answers.parse('{"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP", '
                      '"avgLogprobs": -0.5}], "usageMetadata": {"totalTokenCount": 4}}', message,
                      ignore_unknown_fields=True)
    assert message.candidates[0].content.parts[0].text == "hi" and message.usage_metadata.total_token_count == 4
    assert math.isclose(message.candidates[0].avg_logprobs, -0.5)
