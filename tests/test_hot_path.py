"""The request path's shortcuts (issue 21) give what the longer ways they replaced gave."""
from dataclasses import fields

from hypothesis import given, strategies as st

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
