"""The request path's shortcuts (issue 21) give what the longer ways they replaced gave."""
import json
from dataclasses import fields
from datetime import datetime

from hypothesis import given, settings, strategies as st

from proxy.wire import jsonbody
from proxy.wire.usage import Usage


def test_usage_is_true_when_any_field_is_set():
    assert not Usage()
    for field in fields(Usage):  # a field added to Usage must be added to Usage.__bool__ too
        assert Usage(**{field.name: "flex" if field.name == "service_tier" else 0})


@given(st.integers(min_value=0, max_value=80), st.integers(min_value=0, max_value=80))
def test_the_depth_limit_holds_whatever_brackets_a_body_has(depth, padding):
    body = "[" * depth + "]" * depth if depth else "0"
    body = '{"pad": "%s", "value": %s}' % ("[" * padding, body)  # brackets in a string count, and do no harm
    if depth + 1 > jsonbody.MAX_DEPTH:
        try:
            jsonbody.loads(body)
        except jsonbody.BadJson as exc:
            assert "deeper" in str(exc)
        else:
            raise AssertionError("a body nested too deep was taken")
    else:
        assert jsonbody.loads(body)["pad"] == "[" * padding


def _replayed(spool):
    got = []
    spool.replay(lambda records, tried: (got.extend(records), (len(records), 0))[1], 100)
    return got


def test_a_spool_hands_its_writer_what_it_kept_only_when_it_wrote_the_whole_file(tmp_path):
    from proxy.storage.spool import Spool

    spool, other = Spool(str(tmp_path)), Spool(str(tmp_path))  # two in one process: one file, one pid
    spool.append({"request_id": "1"}, keep="kept-1")
    spool.append({"request_id": "2"}, keep="kept-2")
    assert _replayed(spool) == ["kept-1", "kept-2"]  # not read back from the file
    spool.append({"request_id": "3"}, keep="kept-3")
    other.append({"request_id": "4"}, keep="kept-4")
    assert [record["request_id"] for record in _replayed(spool)] == ["3", "4"]  # read back, both
    other.append({"request_id": "5"}, keep="kept-5")  # its file was claimed: it starts the next one
    assert _replayed(other) == ["kept-5"]
    assert _replayed(spool) == [] and spool.files() == []


def test_records_kept_by_the_spool_are_written_once(app):
    from sqlalchemy import func, select

    from models import RequestLog, db
    from proxy.storage.records import RequestRecord

    writer = app.extensions["records"]
    made = [RequestRecord(request_id=f"kept-{n}", created_at=datetime(2026, 12, 3),
                          route="/gemini/generate", method="POST", status_code=200, latency_ms=1.0)
            for n in range(3)]
    for record in made:
        writer.spool.append(record.to_spooled(), keep=record)
    writer.flush()
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(RequestLog)
                                  .where(RequestLog.request_id.like("kept-%"))).scalar_one() == 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70) |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
answers = st.fixed_dictionaries({}, optional={
    "candidates": st.lists(st.fixed_dictionaries({}, optional={"finishReason": json_values}), max_size=2),
    "usageMetadata": st.dictionaries(st.sampled_from(["promptTokenCount", "candidatesTokenCount",
                                                      "totalTokenCount"]), json_values),
    "modelVersion": json_values, "promptFeedback": st.fixed_dictionaries({}, optional={"blockReason": json_values}),
    "error": json_values, "object": json_values, "other": json_values})


@settings(max_examples=300)
@given(answers, st.sampled_from(["", " ", "\n", "\r\n\t "]), st.sampled_from(["", "\n", " x", "}", ","]))
def test_answers_summarized_from_their_text_as_the_scanner_reads_them(answer, before, after):
    _same_summary(before + json.dumps(answer) + after)


def test_numbers_past_64_bits_summarize_as_the_scanner_reads_them():
    for text in ('{"usageMetadata": {"promptTokenCount": 123456789012345678901234}}',
                 '{"modelVersion": 123456789012345678901234, "candidates": [{"finishReason": 123456789012345678901}]}',
                 '{"error": {"code": 123456789012345678901234, "message": "m"}}',
                 '{"modelVersion": [-9223372036854775809]}', '{"promptFeedback": {"blockReason": [12345678901234567890123]}}',
                 '{"candidates": [{"finishReason": {"a": 12345678901234567890123}}]}'):
        _same_summary(text)


def _same_summary(text):
    from proxy.wire.stream import iter_json_objects, summarize, summarize_text

    assert repr(summarize_text(text)) == repr(summarize(iter_json_objects(text)))


def _count_as_it_was(value):
    """wire.usage.count before its shortcut for a plain int."""
    import math
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            return None
        value = int(text)
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    elif not isinstance(value, int):
        return None
    return value if 0 <= value <= 2**31 - 1 else None


@given(st.one_of(st.integers(), st.booleans(), st.none(), st.floats(), st.text(), st.integers().map(str)))
def test_a_token_count_is_read_as_it_was(value):
    from proxy.wire.usage import count
    assert count(value) == _count_as_it_was(value)
