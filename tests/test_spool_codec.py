"""The spool's line codec (orjson, with json where orjson would not keep a value) gives back every record
it is handed, exactly as the json codec it replaced, and reads the lines that codec wrote."""
import json
from datetime import datetime

from hypothesis import given, settings, strategies as st

from proxy.storage import spool

_OLD_ENCODER = json.JSONEncoder(separators=(",", ":"), default=spool._encode)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(), st.binary(max_size=40),
    # fold is no part of an isoformat, in either codec
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)).map(lambda d: d.replace(fold=0)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                           inner, max_size=4),
                      max_leaves=20)
records = st.dictionaries(st.text(max_size=12), values, max_size=8)


def _json_line(record):
    return (_OLD_ENCODER.encode(record) + "\n").encode("utf-8")


@settings(max_examples=300)
@given(records)
def test_a_record_comes_back_as_it_went(record):
    line = spool.encode(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = spool.decode(line)
    assert back == record and repr(back) == repr(record)  # 2**70 stays an int, 1.0 a float


@settings(max_examples=300)
@given(records)
def test_lines_the_json_codec_wrote_read_the_same(record):
    old = _json_line(record)
    assert spool.decode(old) == json.loads(old, object_hook=spool._decode) == record


def test_a_torn_line_is_a_value_error():
    line = spool.encode({"request_id": "r-1", "created_at": datetime(2026, 1, 2)})
    for cut in (1, len(line) // 2, len(line) - 2):
        try:
            spool.decode(line[:cut])
        except ValueError:
            continue
        raise AssertionError(f"a line cut at {cut} was read")


def test_the_spooled_time_leads_the_line():
    line = spool._stamped({"request_id": "r-1"})
    assert spool._STAMPED.match(line) and spool.decode(line)["request_id"] == "r-1"
