"""The SDK's request bodies written compact: the same JSON as the SDK's indented one."""
import json
from types import SimpleNamespace

from google.protobuf import json_format
from hypothesis import given, strategies as st

from proxy.upstream import gemini_sdk, sdk_seams

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def _request(prompt, system, temperature):
    settings = {"temperature": temperature, "max_output_tokens": 64, "stop_sequences": ["\\n", "é"]}
    return SimpleNamespace(prompt=prompt, system_instruction=system, generation_config=lambda: settings)


@given(_TEXT, _TEXT, st.floats(0, 2, width=32))
def test_the_same_json_as_the_sdk_writes(prompt, system, temperature):
    message = gemini_sdk._generate_request("gemini-2.5-flash", _request(prompt, system, temperature))
    pb = type(message).pb(message)
    ours = sdk_seams._compact_body({"body": pb})
    assert "\n" not in ours
    assert json.loads(ours) == json.loads(json_format.MessageToJson(pb, use_integers_for_enums=True))


def test_the_transport_writes_them():
    for method in sdk_seams.METHODS:
        assert method._get_request_body_json is sdk_seams._compact_body
