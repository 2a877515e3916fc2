"""The request schemas decided by jsonschema_rs accept no body Python's jsonschema refuses, and refuse in its words."""
import math

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from proxy.api import api
from proxy.api.validation import SchemaCheck, schema_of

# Every model a resource checks with expect_valid, and UpdateClient (nullable fields) for good measure.
MODELS = ["GenerateRequest", "CompatRequest", "CreateClient", "UpdateClient"]
CHECKS = {name: SchemaCheck(schema_of(api.models[name])) for name in MODELS}

# Characters on which regular-expression dialects and JSON converters differ: what Python's \s takes and
# ECMA's does not (and back), line ends before $, non-ASCII digits for \d, lone surrogates, NUL, astral.
_ODD = "\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2007\u2028\u2029\u202f\u3000\ufeff\n\r\t\x0b\x0c \x00\u0663\uff11\U0001F600\ud800\udfff"
odd_text = st.text(st.sampled_from(_ODD) | st.characters(codec=None), max_size=12) | st.sampled_from(
    ["10/minute", "10/minute\n", "\ufeff10/minute", "\u0661\u0660/minute", "1 per 2 hours; 5/day", "day", "month",
     "Day", "x" * 100, "x" * 101, "\x1c", "a\n", "gp_" + "k" * 253, "gp_" + "k" * 254, "ok\n"]
)
_BOUNDS = [0, 1, 2, 5, 6, 40, 50, 51, 100, 101, 200, 201, 256, 65536, 2**31 - 1, 2**31, 10**9, 2**53, 2**53 + 1,
           2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**30]
numbers = (
    st.sampled_from(_BOUNDS + [-b for b in _BOUNDS]).flatmap(lambda b: st.sampled_from([b, float(b)]))
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([2.0000000000000004, 1.9999999999999998, 1.0000000000000002, -0.0, 1e-320, 0.95, 1e308])
)
scalars = st.none() | st.booleans() | numbers | odd_text


def _names():
    known = {key for name in MODELS + ["Prompt", "GenerationConfig"] for key in api.models[name].__schema__["properties"]}
    return st.sampled_from(sorted(known) + ["extra", "pattern"]) | odd_text


json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=7)
                           | st.dictionaries(_names(), inner, max_size=6), max_leaves=20)


_rarely = st.integers(0, 7).map(lambda n: n == 0)  # one field in eight is off the schema's shape


def instances(schema):
    """Values mostly of the schema's shape, each field valid or just past a bound, so both verdicts occur."""
    if "allOf" in schema:
        return instances(api.models[schema["allOf"][0]["$ref"].rsplit("/", 1)[-1]].__schema__)
    kind = schema.get("type")
    if "enum" in schema:
        shaped = st.sampled_from(schema["enum"]) | odd_text
    elif kind == "object":
        properties = {key: instances(each) for key, each in schema["properties"].items()}
        required = {key: properties.pop(key) for key in schema.get("required", ())}
        shaped = st.fixed_dictionaries(required, optional=properties)
        shaped = st.tuples(shaped, _rarely, _names(), scalars).map(
            lambda each: {**each[0], each[2]: each[3]} if each[1] else each[0])
    elif kind == "string":
        shaped = odd_text | st.text(st.characters(codec="utf-8"), max_size=8)
        if "pattern" in schema:
            shaped = shaped | st.from_regex(schema["pattern"]) | st.from_regex(schema["pattern"])
    elif kind in ("integer", "number"):
        low, high = schema.get("minimum", -(2**64)), schema.get("maximum", 2**64)
        near = st.integers(low - 2, high + 2) if kind == "integer" else st.floats(low - 1, high + 1)
        shaped = near | near | st.sampled_from([low, high]).map(lambda bound: math.nextafter(bound, math.inf)) | numbers
    elif kind == "array":
        shaped = st.lists(instances(schema["items"]), max_size=schema.get("maxItems", 3) + 1)
    else:
        shaped = scalars
    if schema.get("x-nullable"):
        shaped = shaped | st.none()
    if kind == "object":
        return shaped
    return st.tuples(shaped, _rarely, scalars).map(lambda each: each[2] if each[1] else each[0])


def _bodies():
    return st.sampled_from(MODELS).flatmap(lambda name: st.tuples(
        st.just(name), st.one_of(*[instances(api.models[name].__schema__)] * 3, json_values)))


def _python_problems(check, body):
    return sorted(error.message for error in check.python.iter_errors(body))


def _fast_accepts(check, body):
    try:
        return check.fast.is_valid(body)
    except Exception:  # it cannot decide (a lone surrogate): SchemaCheck asks the Python validator
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
@example(("GenerateRequest", {"prompt": {"text": "\x1c"}}))
@example(("GenerateRequest", {"prompt": {"text": "\x85\ufeff"}}))
@example(("CompatRequest", {"prompt": "hi", "api_key": "abc\n"}))
@example(("CreateClient", {"name": "n", "rate_limit": "\ufeff10/minute"}))
@example(("CreateClient", {"name": "n", "daily_token_quota": 2**31}))
@example(("GenerateRequest", {"prompt": {"text": "hi"}, "generation_config": {"temperature": math.nan}}))
@example(("GenerateRequest", {"prompt": {"text": "hi"}, "generation_config": {"max_output_tokens": 1.0}}))
def test_the_fast_validator_never_accepts_what_jsonschema_refuses(case):
    name, body = case
    check = CHECKS[name]
    problems = _python_problems(check, body)
    if _fast_accepts(check, body):
        assert problems == [], (name, body)
    assert sorted(error.message for error in check.iter_errors(body)) == problems


@pytest.mark.parametrize("name", MODELS)
def test_every_checked_model_has_a_fast_validator(name):
    assert CHECKS[name].fast is not None


@pytest.mark.parametrize("body", [{"prompt": {"text": "\x1c"}}, {"prompt": {"text": "\x85"}},
                                  {"prompt": {"text": "hi"}, "pattern": "x"}])
def test_patterns_are_read_as_python_reads_them(body):
    assert _fast_accepts(CHECKS["GenerateRequest"], body) is False
    assert _python_problems(CHECKS["GenerateRequest"], body)


def test_a_prompt_ecma_would_call_blank_is_accepted_as_python_does():
    body = {"prompt": {"text": "\ufeff"}}
    assert _fast_accepts(CHECKS["GenerateRequest"], body) is True and not _python_problems(CHECKS["GenerateRequest"], body)
