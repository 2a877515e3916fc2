"""Hostile values in recorded fields against storage.batch's DBAPI executemany: a batch holding one record
the database cannot take writes the others and hands that one back, whatever the value (NUL, a lone
surrogate, an integer past 64 bits, NaN)."""
import math

import pytest
from sqlalchemy import text

from models import db
from proxy.storage.batch import insert_records
from tests.test_batch_rows import _record

ODD = {
    "nul in a string": ("model_used", "gemini\x00flash"),
    "lone surrogate": ("route", "/v1beta/\ud800"),
    "NaN latency": ("latency_ms", math.nan),
    "infinite latency": ("latency_ms", math.inf),
    "negative zero": ("latency_ms", -0.0),
}
HUGE = {
    "integer past 64 bits": ("prompt_tokens", 2**70),
    "negative past 64 bits": ("status_code", -2**70),
}


def _write(app, field, value):
    refused = []
    with app.app_context():
        odd = _record("hostile-odd")
        setattr(odd, field, value)
        result = insert_records([_record("hostile-ok-1"), odd, _record("hostile-ok-2")],
                                reject=lambda record, why: refused.append((record.request_id, why)))
        ids = {r for (r,) in db.session.execute(text("SELECT request_id FROM request_log"))}
    return result, refused, ids


@pytest.mark.parametrize("field,value", ODD.values(), ids=ODD.keys())
def test_an_odd_value_holds_back_no_other_record(app, field, value):
    (written, _), refused, ids = _write(app, field, value)
    assert {"hostile-ok-1", "hostile-ok-2"} <= ids
    # The odd record is either written or handed back, never lost silently.
    assert ("hostile-odd" in ids) != bool(refused), (ids, refused)
    assert written == len(ids)


@pytest.mark.parametrize("field,value", HUGE.values(), ids=HUGE.keys())
def test_an_integer_the_database_cannot_hold_is_handed_back(app, field, value):
    (written, _), refused, ids = _write(app, field, value)
    assert ids == {"hostile-ok-1", "hostile-ok-2"} and written == 2
    assert [r for r, _ in refused] == ["hostile-odd"]


@pytest.mark.e2e
def test_odd_values_on_postgresql_hold_back_no_other_record(make_app, postgres):
    """PostgreSQL refuses what SQLite takes (NUL in text, a lone surrogate): each such record is handed back
    alone, the rest of its batch written, in one app (one engine) across every case."""
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres.url)
    cases = {**ODD, **HUGE}
    refused = []
    with app.app_context():
        for n, (field, value) in enumerate(cases.values()):
            odd = _record(f"pg-odd-{n}")
            setattr(odd, field, value)
            try:
                insert_records([_record(f"pg-ok-{n}-a"), odd, _record(f"pg-ok-{n}-b")],
                               reject=lambda record, why: refused.append(record.request_id))
            except OverflowError:
                refused.append(f"raised:{n}")
        ids = {r for (r,) in db.session.execute(text("SELECT request_id FROM request_log"))}
    for n, name in enumerate(cases):
        assert {f"pg-ok-{n}-a", f"pg-ok-{n}-b"} <= ids, name
        assert (f"pg-odd-{n}" in ids) != (f"pg-odd-{n}" in refused), (name, refused)
