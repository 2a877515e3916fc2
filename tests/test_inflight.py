"""The requests a dead worker held are recorded by its survivors once each, as WORKER_DIED, and give way to
their own records should those turn up; a live worker's notes stay small. Proved by counting rows."""
import os
from datetime import datetime

import pytest

from proxy.storage import inflight
from proxy.storage.spool import encode
from tests.conftest import rows

DEAD = 2**22 + 1  # no pid is this large: a worker that died


def note(request_id, started_at, model="gemini-2.5-flash"):
    return {"request_id": request_id, "started_at": started_at, "area": "native", "rule": None,
            "path": f"/v1beta/models/{model}:generateContent", "method": "POST", "client_id": None, "worker": DEAD,
            "native": ["/v1beta/models/{model}:generateContent", model]}


def final(request_id, started_at):
    return {"request_id": request_id, "created_at": started_at, "route": "/v1beta/models/{model}:generateContent",
            "method": "POST", "status_code": 200, "latency_ms": 12.5, "attempt_count": 1, "attempts": [],
            "metric": None, "exchange": None}


def leave(spool_dir, name, lines):
    """A file a dead worker left, appearing whole (a survivor may claim it the moment it has its name)."""
    incoming = spool_dir / "incoming.tmp"
    incoming.write_bytes(b"".join(encode(line) for line in lines))
    incoming.rename(spool_dir / name)


def logged(app):
    return sorted(rows(app.config["SQLALCHEMY_DATABASE_URI"],
                       "SELECT request_id, status_code, error_code, model_requested FROM request_log"))


def routes(app):
    return rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT DISTINCT route FROM request_log")


def test_two_survivors_record_a_dead_workers_unfinished_requests_once(make_app, tmp_path):
    spool_dir = tmp_path / "spool"
    first, second = make_app(SPOOL_DIR=str(spool_dir)), make_app(SPOOL_DIR=str(spool_dir))
    answered = first.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}},
                                        headers={"X-Request-ID": "answered-0001"})
    assert answered.status_code == 200
    (done_at,) = rows(first.config["SQLALCHEMY_DATABASE_URI"], "SELECT created_at FROM request_log")[0]
    started = datetime(2026, 12, 2, 10, 0, 0, 123456)
    # It had answered one request (recorded), spooled another's record, and held a third when it died.
    leave(spool_dir, f"spool-{DEAD}.jsonl", [final("spooled-0001", started)])
    leave(spool_dir, f"inflight-{DEAD}.jsonl", [note("answered-0001", datetime.fromisoformat(str(done_at))),
                                                note("spooled-0001", started), note("cut-00001", started)])

    messages = [first.extensions["records"].replay(), second.extensions["records"].replay(),
                first.extensions["records"].replay()]
    assert messages[1:] == [None, None]
    assert logged(first) == [("answered-0001", 200, None, None), ("cut-00001", 502, "WORKER_DIED", "gemini-2.5-flash"),
                             ("spooled-0001", 200, None, None)]
    assert not [name for name in os.listdir(spool_dir) if name.endswith((".inflight", ".replaying"))
                or name.startswith(("spool-", f"inflight-{DEAD}"))]


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def test_a_final_record_that_turns_up_later_replaces_the_worker_died_row(make_app, tmp_path, request, database):
    spool_dir = tmp_path / "spool"
    overrides = {"SQLALCHEMY_DATABASE_URI": request.getfixturevalue("postgres").url} if database == "postgresql" else {}
    app = make_app(SPOOL_DIR=str(spool_dir), **overrides)
    started = datetime(2026, 12, 2, 11, 0, 0, 5)
    leave(spool_dir, f"inflight-{DEAD}.jsonl", [note("late-000001", started)])
    app.extensions["records"].replay()
    assert logged(app) == [("late-000001", 502, "WORKER_DIED", "gemini-2.5-flash")]
    assert routes(app) == [("/v1beta/models/{model}:generateContent",)]
    # Another survivor had claimed the dead worker's spool file, and writes it only now.
    leave(spool_dir, f"claimed-1.{DEAD}.replaying", [final("late-000001", started)])
    app.extensions["records"].replay()
    assert logged(app) == [("late-000001", 200, None, None)]
    leave(spool_dir, f"inflight-{DEAD + 1}.jsonl", [note("late-000001", started)])  # noted twice: still one row
    app.extensions["records"].replay()
    assert logged(app) == [("late-000001", 200, None, None)]


def test_a_live_worker_forgets_each_request_once_it_has_closed_and_keeps_its_notes_small(make_app, tmp_path,
                                                                                          monkeypatch):
    spool_dir = tmp_path / "spool"
    app = make_app(SPOOL_DIR=str(spool_dir))
    notes = app.extensions["records"].inflight
    client = app.test_client()
    for n in range(5):
        assert client.post("/gemini/generate", json={"prompt": {"text": f"q{n}"}}).status_code == 200
    own = spool_dir / f"inflight-{os.getpid()}.jsonl"
    assert len(own.read_bytes().splitlines()) == 5 and notes._held == {}
    app.extensions["records"].replay()  # a live worker's notes are its own
    assert len(own.read_bytes().splitlines()) == 5 and len(logged(app)) == 5

    monkeypatch.setattr(inflight, "_COMPACT_BYTES", 1)
    notes.start("held", note("still-going", datetime(2026, 12, 2)))
    notes.compact()
    assert [line for line in own.read_bytes().splitlines()] == [encode(note("still-going", datetime(2026, 12, 2)))
                                                                .rstrip()]
    assert client.post("/gemini/generate", json={"prompt": {"text": "after"}}).status_code == 200
    assert len(own.read_bytes().splitlines()) == 2  # appended to the rewritten file
    notes.close()  # still holding one: the notes are left for the survivors
    assert own.exists()
    notes.end("held")
    notes.start("other", note("x-00000001", datetime(2026, 12, 2)))
    notes.end("other")
    notes.close()
    assert not own.exists()


def test_notes_left_under_a_reused_pid_are_replayed_not_taken_over(make_app, tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    started = datetime(2026, 12, 2, 12, 0, 0, 7)
    # A restarted container's worker gets the pid its predecessor had, and finds its notes.
    leave(spool_dir, f"inflight-{os.getpid()}.jsonl", [note("before-restart", started)])
    app = make_app(SPOOL_DIR=str(spool_dir))
    assert app.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}}).status_code == 200
    app.extensions["records"].replay()
    assert [row for row in logged(app) if row[2]] == [("before-restart", 502, "WORKER_DIED", "gemini-2.5-flash")]
    assert len(logged(app)) == 2
