"""Operations: CSV and JSONL exports, retention, and an online backup while writes go on."""
import csv
import io
import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from models import Attempt, Exchange, ExchangeBody, Metric, RequestLog, db
from tests.conftest import KEYS, MODELS, rows, wait_for


def now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def test_export_csv_filters_by_window_and_model(app, client):
    for n in range(3):
        client.post("/gemini/generate", json={"prompt": {"text": f"row {n}"}, "model": MODELS[n % 2]})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["ops", "export-csv", "--model", MODELS[0]])
    assert result.exit_code == 0
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(table) == 2 and {r["model_used"] for r in table} == {MODELS[0]}
    assert int(table[0]["total_tokens"]) > 0 and table[0]["route"] == "/gemini/generate"
    empty = runner.invoke(args=["ops", "export-csv", "--from", "2020-01-01T00:00:00Z", "--to", "2020-01-02T00:00:00Z"])
    assert list(csv.reader(io.StringIO(empty.stdout)))[1:] == []
    assert runner.invoke(args=["ops", "export-csv", "--from", "soon"]).exit_code != 0


def test_export_jsonl_gives_tuning_pairs_from_native_exchanges(app, client):
    body = {"systemInstruction": {"parts": [{"text": "Be kind"}]},
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}
    for path in ("generateContent", "streamGenerateContent?alt=sse"):
        response = client.post(f"/v1beta/models/{MODELS[0]}:{path}", json=body, headers={"x-goog-api-key": KEYS[0]})
        response.get_data()
        response.close()
    result = app.test_cli_runner().invoke(args=["ops", "export-jsonl"])
    examples = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(examples) == 2
    for example in examples:
        user, model = example["contents"]
        assert user["parts"][0]["text"] == "Say hello" and model["role"] == "model"
        assert model["parts"][0]["text"].startswith(f"Emulated {MODELS[0]} answer to: Say hello")
        assert example["systemInstruction"]["parts"][0]["text"] == "Be kind"
    assert examples[0]["contents"][1] == examples[1]["contents"][1]  # a stream folds to the same answer


def _history(app):
    with app.app_context():
        for age_days in (1, 10, 40):
            created = now() - timedelta(days=age_days)
            entry = RequestLog(request_id=f"age-{age_days}", created_at=created, route="/v1beta/x", status_code=200,
                               latency_ms=1.0, metric=Metric(timestamp=created, prompt_tokens=1, completion_tokens=1,
                                                             total_tokens=2))
            entry.attempts = [Attempt(number=1, model="m", outcome="ok", latency_ms=1.0)]
            entry.exchange = Exchange(path="/v1beta/x", key_source="server",
                                      body=ExchangeBody(request_body=b"x", response_body=b"y"))
            db.session.add(entry)
        db.session.commit()


def test_prune_keeps_bodies_for_a_shorter_time_than_metrics(app):
    _history(app)
    result = app.test_cli_runner().invoke(args=["ops", "prune", "--days", "30", "--body-days", "7"])
    assert result.exit_code == 0 and "Removed 1 requests, 1 metrics rows and 2 bodies" in result.output
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert rows(url, "SELECT request_id FROM request_log ORDER BY id") == [("age-1",), ("age-10",)]
    assert rows(url, "SELECT count(*) FROM attempts") == [(2,)] and rows(url, "SELECT count(*) FROM exchanges") == [(2,)]
    assert rows(url, "SELECT count(*) FROM exchange_bodies") == [(1,)]
    assert rows(url, "SELECT count(*) FROM metrics") == [(2,)]


def test_prune_deletes_a_batch_a_transaction_and_leaves_nothing_behind(app):
    from proxy.analytics.operations import prune

    with app.app_context():
        for n in range(12):
            created = now() - timedelta(days=40, minutes=n)
            db.session.add(RequestLog(request_id=f"old-{n}", created_at=created, route="/v1beta/x", status_code=200,
                                      latency_ms=1.0, metric=Metric(timestamp=created, total_tokens=2),
                                      exchange=Exchange(path="/v1beta/x", key_source="server",
                                                        body=ExchangeBody(request_body=b"x"))))
        db.session.commit()
    _history(app)
    statements = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        removed = prune(30, 20, batch=5)
    assert removed == {"requests": 13, "metrics": 13, "bodies": 13}
    deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE FROM REQUEST_LOG")]
    assert len(deletes) == 3  # 5, 5 and 3 rows, each in its own transaction
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert rows(url, "SELECT request_id FROM request_log ORDER BY id") == [("age-1",), ("age-10",)]
    assert rows(url, "SELECT count(*) FROM exchange_bodies") == [(2,)]
    assert rows(url, "SELECT count(*) FROM metrics") == [(2,)]


def test_prune_with_nothing_configured_keeps_everything(app):
    _history(app)
    assert "Removed 0 requests, 0 metrics rows and 0 bodies" in app.test_cli_runner().invoke(args=["ops", "prune"]).output


def test_periodic_retention_runs_on_its_own(make_app):
    import time

    from proxy.analytics import operations

    app = make_app(BODY_RETENTION_DAYS=7)
    _history(app)
    stop = threading.Event()
    thread = operations.start_periodic_prune(app, 0.05, 0, 7, stop)
    try:
        for _ in range(100):
            if rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT count(*) FROM exchange_bodies") == [(1,)]:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the periodic retention never ran")
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_backup_is_consistent_while_the_server_keeps_writing(app, tmp_path):
    source = str(tmp_path / "proxy.db")
    stop, written = threading.Event(), [0]

    def writer():
        connection = sqlite3.connect(source, timeout=30)
        while not stop.is_set():
            with connection:
                connection.execute("INSERT INTO metrics (timestamp, prompt_tokens, completion_tokens, total_tokens) "
                                   "VALUES (?, 1, 1, 2)", (now().isoformat(" "),))
            written[0] += 1
        connection.close()

    with app.app_context():
        db.session.execute(Metric.__table__.insert(), [{"timestamp": now(), "prompt_tokens": 1,
                                                        "completion_tokens": 1, "total_tokens": 2}] * 20000)
        db.session.commit()
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = app.test_cli_runner().invoke(args=["ops", "backup", str(tmp_path / "copy.db")])
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    assert written[0] > 0
    copy = sqlite3.connect(str(tmp_path / "copy.db"))
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = copy.execute("SELECT count(*) FROM metrics").fetchone()[0]
    assert 20000 <= copied <= 20000 + written[0]


@pytest.mark.e2e
def test_a_gunicorn_worker_prunes_in_a_process_of_its_own(make_app, gunicorn):
    seeded = make_app()  # the database the server below uses
    _history(seeded)
    url = seeded.config["SQLALCHEMY_DATABASE_URI"]
    server = gunicorn(RETENTION_DAYS="30", BODY_RETENTION_DAYS="7", RETENTION_INTERVAL_SECONDS="1")
    wait_for(lambda: rows(url, "SELECT request_id FROM request_log ORDER BY id") == [("age-1",), ("age-10",)],
             message="the 40-day-old request pruned")
    assert rows(url, "SELECT count(*) FROM exchange_bodies") == [(1,)]
    # Two workers, one process at a time on a host: the second finds the lock taken, or nothing left.
    wait_for(lambda: "proxy.maintenance: retention: pruned {'requests': 1, 'metrics': 1, 'bodies': 2}"
                     in server.output(),
             message="the job's process to log what it pruned")
    assert server.output().count("'requests': 1") == 1 and "Traceback" not in server.output()
