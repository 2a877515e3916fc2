"""Database faults never fail a request and never lose its record: the spool keeps what the database
refuses and replays it, once, when the database takes records again. Proved by counting."""
import json
import os
import sqlite3
import subprocess
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from models import db
from proxy.storage.spool import Spool, encode
from tests.conftest import KEYS, MODELS, rows, samples, value, wait_for

GENERATE = {"prompt": {"text": "Say hello"}}
NATIVE = {"contents": [{"parts": [{"text": "Say hello"}]}]}


def leave_dead_workers_file(spool_dir, data):
    """A spool file of a worker that died (no pid is this large), appearing whole: a worker may claim it
    the moment it has its name, and a dead worker writes no more."""
    incoming = spool_dir / "incoming.tmp"
    incoming.write_bytes(data)
    incoming.rename(spool_dir / f"spool-{2**22 + 1}.jsonl")


def native_path(model=MODELS[0]):
    return f"/v1beta/models/{model}:generateContent"


def test_a_refused_record_is_spooled_then_written_once(make_app, tmp_path):
    app = make_app(SPOOL_DIR=str(tmp_path / "spool"))
    client = app.test_client()
    with app.app_context():
        db.drop_all()  # the database refuses every record now
    assert client.post("/gemini/generate", json=GENERATE).status_code == 200
    native = client.post(native_path(), json=NATIVE, headers={"x-goog-api-key": KEYS[0]})
    assert native.status_code == 200 and native.json["candidates"]
    health = client.get("/health").json
    assert health["spool"]["depth"] == 2 and health["status"] == "degraded" and "spool" in health["message"]

    assert "replayed 2" in app.extensions["records"].replay()
    assert app.extensions["records"].replay() is None  # nothing left: a second run writes nothing twice
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert rows(url, "SELECT count(*), count(DISTINCT request_id) FROM request_log") == [(2, 2)]
    assert rows(url, "SELECT count(*) FROM exchanges") == [(1,)]
    assert rows(url, "SELECT count(*) FROM exchange_bodies") == [(1,)]
    assert rows(url, "SELECT count(*) FROM metrics") == [(2,)]
    assert rows(url, "SELECT count(*) FROM attempts") == [(2,)]
    assert client.get("/health").json["spool"] == {"depth": 0, "stuck": 0, "oldest_seconds": 0.0, "rejected": 0,
                                                  "held_in_memory": 0}


def test_a_record_spooled_twice_is_written_once(make_app, tmp_path):
    app = make_app(SPOOL_DIR=str(tmp_path / "spool"))
    client = app.test_client()
    with app.app_context():
        db.drop_all()
    client.post("/gemini/generate", json=GENERATE)
    spooled = app.extensions["spool"].files()
    assert len(spooled) == 1
    with open(spooled[0], "rb") as handle:
        line = handle.read()
    # A worker that died (no pid is this large) left the same record again, and a line it cut short.
    leave_dead_workers_file(tmp_path / "spool", line + b'{"torn": tru')
    assert app.extensions["records"].replay() == \
        "replayed 1 spooled record(s) into the database (1 were already there)"
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT count(*) FROM request_log") == [(1,)]
    assert app.extensions["spool"].files() == []


def test_health_stays_200_and_requests_are_answered_while_the_database_is_unreachable(make_app, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing-dir/proxy.db",
                   SPOOL_DIR=str(tmp_path / "spool"))
    client = app.test_client()
    assert client.post("/gemini/generate", json=GENERATE).status_code == 200
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "degraded" and body["database"] == {"reachable": False}
    assert body["spool"]["depth"] == 1


def send(server, count, kind="generate"):
    def one(n):
        if kind == "generate":
            return requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": f"q{n}"}}, timeout=60)
        return requests.post(f"{server.url}{native_path()}", json={"contents": [{"parts": [{"text": f"n{n}"}]}]},
                             headers={"x-goog-api-key": KEYS[0]}, timeout=60)

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(one, range(count)))


def health(server):
    return requests.get(f"{server.url}/health", timeout=10).json()


@pytest.mark.e2e
def test_a_database_locked_for_seconds_loses_nothing(gunicorn, tmp_path):
    server = gunicorn(SQLITE_BUSY_TIMEOUT_SECONDS="0.3", SPOOL_REPLAY_SECONDS="0.3")
    path = server.database_url.split("///", 1)[1]
    assert all(r.status_code == 200 for r in send(server, 5))
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(5,)], message="5 rows")

    locker = sqlite3.connect(path, timeout=5)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database for seconds
    try:
        answered = send(server, 20) + send(server, 10, kind="native")
        assert [r.status_code for r in answered] == [200] * 30
        wait_for(lambda: health(server)["spool"]["depth"] == 30, message="30 spooled records")
        # Degraded once the writer's patience (the busy timeout) has run out.
        wait_for(lambda: health(server)["status"] == "degraded", message="health to report the refusal")
        # Whichever of the two workers answers the scrape counts both workers' records.
        wait_for(lambda: spool_gauge(server, "stuck") == 30, message="the records counted stuck")
        assert [spool_gauge(server, "waiting") for _ in range(4)] == [30] * 4
    finally:
        locker.rollback()
        locker.close()

    wait_for(lambda: health(server)["spool"]["depth"] == 0, message="the spool to drain")
    ids = {r.headers["X-Request-ID"] for r in answered}
    logged = rows(server.database_url, "SELECT request_id FROM request_log")
    assert len(logged) == 35 and len({r for (r,) in logged}) == 35 and ids <= {r for (r,) in logged}
    assert rows(server.database_url, "SELECT count(*) FROM exchanges") == [(10,)]
    assert rows(server.database_url, "SELECT count(*) FROM metrics") == [(35,)]
    assert health(server)["status"] == "ok"
    assert [spool_gauge(server, state) for state in ("waiting", "stuck", "rejected")] == [0, 0, 0]


@pytest.mark.e2e
def test_health_is_degraded_once_records_have_waited_two_replay_intervals_behind_a_locked_database(gunicorn):
    # A long busy timeout: the writers wait for the lock rather than fail, so no write is refused.
    server = gunicorn(SQLITE_BUSY_TIMEOUT_SECONDS="60", SPOOL_REPLAY_SECONDS="0.5", RECORD_GATHER_SECONDS="0")
    path = server.database_url.split("///", 1)[1]
    assert all(r.status_code == 200 for r in send(server, 4))
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(4,)], message="4 rows")
    assert health(server)["status"] == "ok"

    locker = sqlite3.connect(path, timeout=5)
    locker.execute("BEGIN EXCLUSIVE")
    stop, trickled = threading.Event(), []

    def trickle():  # traffic goes on: every worker's spool file is appended to all the time
        while not stop.is_set():
            trickled.extend(send(server, 4))
            time.sleep(0.1)

    trickler = threading.Thread(target=trickle)
    try:
        waiting = send(server, 20)
        assert [r.status_code for r in waiting] == [200] * 20
        trickler.start()
        # Every one of the 20 has waited longer than two replay intervals, however fresh its file.
        wait_for(lambda: health(server)["spool"]["stuck"] >= 20, 20, "the 20 records counted stuck")
        body = health(server)
        assert body["status"] == "degraded" and body["spool"]["oldest_seconds"] >= 1.0
        assert "has not taken records" in body["message"]
    finally:
        stop.set()
        if trickler.is_alive():
            trickler.join()
        locker.rollback()
        locker.close()
    total = 4 + 20 + len(trickled)
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(total,)], 30,
             "every record written")
    wait_for(lambda: health(server)["status"] == "ok", message="health to be ok again")
    assert health(server)["spool"]["stuck"] == 0


def spool_gauge(server, state):
    """gemini_proxy_spool_records{state=...} from /metrics."""
    found = samples(requests.get(f"{server.url}/metrics", timeout=10).text)
    assert ("gemini_proxy_spool_records", (("state", state),)) in found
    return value(found, "gemini_proxy_spool_records", state=state)


@pytest.mark.e2e
def test_a_writer_waiting_for_the_database_lock_holds_up_no_request(gunicorn, tmp_path):
    # Patience long enough that the records' writer is still waiting when the lock is released.
    server = gunicorn(SQLITE_BUSY_TIMEOUT_SECONDS="120", WEB_CONCURRENCY=1)
    path = server.database_url.split("///", 1)[1]
    assert all(r.status_code == 200 for r in send(server, 3))
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(3,)], message="3 rows")

    locker = sqlite3.connect(path, timeout=5)
    locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        first = send(server, 1)  # its record's write now waits for the lock
        wait_for(lambda: health(server)["spool"]["depth"] == 1, message="the first record waiting")
        # SQLite's own busy handler waited inside C, and with it the worker's every request.
        later = [requests.post(f"{server.url}{native_path()}", json=NATIVE, headers={"x-goog-api-key": KEYS[0]},
                               timeout=10) for _ in range(5)]
        later += send(server, 10)
        assert [r.status_code for r in first + later] == [200] * 16
        assert health(server)["spool"]["depth"] == 16
        assert rows(server.database_url, "SELECT count(*) FROM request_log") == [(3,)]
    finally:
        locker.rollback()
        locker.close()

    wait_for(lambda: health(server)["spool"]["depth"] == 0, message="the waiting records written")
    ids = {r.headers["X-Request-ID"] for r in first + later}
    logged = {r for (r,) in rows(server.database_url, "SELECT request_id FROM request_log")}
    assert len(logged) == 19 and ids <= logged
    assert rows(server.database_url, "SELECT count(*) FROM exchanges") == [(5,)]
    assert "the database refused records" not in server.output()


@pytest.mark.e2e
def test_a_deleted_database_file_loses_no_record_made_after_it(gunicorn):
    server = gunicorn(SPOOL_REPLAY_SECONDS="0.3")
    path = server.database_url.split("///", 1)[1]
    assert all(r.status_code == 200 for r in send(server, 5))
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(5,)], message="5 rows")

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    after = send(server, 20)
    assert [r.status_code for r in after] == [200] * 20

    ids = {r.headers["X-Request-ID"] for r in after}

    def recorded():
        try:
            return {r for (r,) in rows(server.database_url, "SELECT request_id FROM request_log")}
        except Exception:  # the new file may not have its tables yet
            return set()

    wait_for(lambda: recorded() == ids, message="every request after the deletion in the new database")
    wait_for(lambda: health(server)["spool"]["depth"] == 0, message="the spool to drain")
    assert "FAILED TO RECORD" not in server.output()


def test_requests_that_share_a_client_request_id_are_each_recorded(make_app):
    app = make_app()
    client = app.test_client()
    for _ in range(3):
        answer = client.post("/gemini/generate", json=GENERATE, headers={"X-Request-ID": "client-retry-1234"})
        assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "client-retry-1234"
    logged = [r for (r,) in rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT request_id FROM request_log ORDER BY id")]
    assert len(logged) == 3 and len(set(logged)) == 3
    assert logged[0] == "client-retry-1234" and all(r.startswith("client-retry-1234~") for r in logged[1:])


def test_a_record_the_database_refuses_as_invalid_is_kept_apart_and_holds_back_no_other(make_app, tmp_path):
    spool_dir = tmp_path / "spool"
    app = make_app(SPOOL_DIR=str(spool_dir))
    client = app.test_client()
    with app.app_context():
        db.drop_all()
    for n in range(3):
        client.post("/gemini/generate", json={"prompt": {"text": f"q{n}"}})
    waiting = app.extensions["spool"].files()  # the first write failed and left its file claimed
    with open(waiting[0], "rb") as handle:
        template = json.loads(handle.readline())
    broken = dict(template, request_id="broken-record-1", route=None)  # route may not be null
    leave_dead_workers_file(spool_dir, json.dumps(broken).encode() + b"\n")
    assert "replayed 3" in app.extensions["records"].replay()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert rows(url, "SELECT count(*) FROM request_log WHERE request_id != 'broken-record-1'") == [(3,)]
    health = client.get("/health").json
    assert health["spool"] == {"depth": 0, "stuck": 0, "oldest_seconds": 0.0, "rejected": 1, "held_in_memory": 0}
    assert "invalid" in health["message"]
    (kept,) = [path for path in os.listdir(spool_dir) if path.startswith("rejected-")]
    with open(spool_dir / kept, "rb") as handle:
        entry = json.loads(handle.read())
    assert entry["record"]["request_id"] == "broken-record-1" and "IntegrityError" in entry["reason"]


@pytest.mark.e2e
def test_a_dead_workers_records_are_written_under_steady_traffic(gunicorn, tmp_path):
    server = gunicorn(SPOOL_REPLAY_SECONDS="0.5", WEB_CONCURRENCY=1)
    left = {"request_id": "dead-worker-record-1", "created_at": {"$dt": "2026-01-02T03:04:05.000006"},
            "route": "/gemini/generate", "status_code": 200, "latency_ms": 12.5}
    leave_dead_workers_file(tmp_path / "proxy.db.spool", json.dumps(left).encode() + b"\n")
    found = []
    # Traffic never pauses long enough for an idle-time replay, for 20 replay intervals at most (a
    # count of requests would not do: 150 took less than one interval).
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        assert requests.post(f"{server.url}/gemini/generate", json=GENERATE, timeout=30).status_code == 200
        found = rows(server.database_url, "SELECT latency_ms FROM request_log WHERE request_id = "
                                          "'dead-worker-record-1'")
    assert found == [(12.5,)], server.output()[-3000:]


@pytest.mark.e2e
def test_requests_are_answered_while_a_long_backlog_is_written(gunicorn, tmp_path):
    server = gunicorn(SPOOL_REPLAY_SECONDS="0.5", WEB_CONCURRENCY=1)
    backlog = 5000  # a dead worker's records, from a long outage
    lines = "".join(json.dumps({"request_id": f"backlog-{n}", "created_at": {"$dt": "2026-01-02T03:04:05.000006"},
                                "route": "/gemini/generate", "status_code": 200, "latency_ms": 1.0}) + "\n"
                    for n in range(backlog))
    leave_dead_workers_file(tmp_path / "proxy.db.spool", lines.encode())

    def written():
        return rows(server.database_url, "SELECT count(*) FROM request_log WHERE request_id LIKE 'backlog-%'")[0][0]

    seen = set()  # how much of the backlog was written as each request was answered
    for _ in range(3000):
        assert requests.post(f"{server.url}/gemini/generate", json=GENERATE, timeout=30).status_code == 200
        seen.add(written())
        if backlog in seen:
            break
    assert backlog in seen
    # Answers came between the backlog's transactions, not only before or after a single one.
    assert seen - {0, backlog}, seen


def test_the_spool_depth_counts_what_was_appended_since_the_last_count(tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    for n in range(3):
        spool.append({"request_id": f"a{n}"})
    assert spool.waiting(60)[:2] == (3, 0)
    (own,) = spool.files()
    with open(own, "ab") as handle:
        handle.write(b'{"request_id": "a3')  # another worker's append, under way
    assert spool.waiting(60)[:2] == (3, 0)
    with open(own, "ab") as handle:
        handle.write(b'"}\n')
    spool.append({"request_id": "a4"})
    assert spool.waiting(60)[:2] == (5, 0)

    with open(own, "wb") as handle:  # a new file under the same name and inode, longer than the last
        handle.write(b"".join(encode({"request_id": f"rewritten-{n}"}) for n in range(9)))
    assert spool.waiting(60)[:2] == (9, 0)
    assert spool.replay(lambda records, tried: (len(records), 0), per_write=4) == (9, 0)
    assert spool.waiting(60)[:2] == (0, 0)
    spool.append({"request_id": "c0"})
    assert spool.waiting(60)[:2] == (1, 0)
    spool.reject({"request_id": "c1"}, "too long")
    spool.reject({"request_id": "c2"}, "too long")
    assert spool.rejected() == 2 and spool.waiting(60)[:2] == (1, 0)


def test_records_are_held_in_memory_while_the_spool_disk_refuses_them_too(make_app, tmp_path):
    spool_dir = tmp_path / "spool"
    app = make_app(SPOOL_DIR=str(spool_dir))
    client = app.test_client()
    with app.app_context():
        db.drop_all()  # the database refuses records...
    os.rmdir(spool_dir)
    spool_dir.write_bytes(b"")  # ...and so does the spool's disk: its folder cannot be written
    answers = [client.post("/gemini/generate", json={"prompt": {"text": f"q{n}"}}) for n in range(2)]
    answers.append(client.post(native_path(), json=NATIVE, headers={"x-goog-api-key": KEYS[0]}))
    assert [answer.status_code for answer in answers] == [200] * 3
    health = client.get("/health").json
    assert health["status"] == "degraded" and health["spool"]["held_in_memory"] == 3

    spool_dir.unlink()  # the disk takes files again; the database is still away
    app.extensions["records"].replay()
    assert app.extensions["records"].held == [] and len(app.extensions["spool"].files()) >= 1
    with app.app_context():
        db.create_all()  # the database is back
    app.extensions["records"].replay()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    ids = {answer.headers["X-Request-ID"] for answer in answers}
    assert {r for (r,) in rows(url, "SELECT request_id FROM request_log")} == ids
    assert rows(url, "SELECT count(*) FROM exchange_bodies") == [(1,)]
    assert client.get("/health").json["spool"] == {"depth": 0, "stuck": 0, "oldest_seconds": 0.0, "rejected": 0,
                                                  "held_in_memory": 0}


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs of its own (CI runs as root, which may mount one), unmounted afterwards."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"this test mounts a small tmpfs, which needs root: {done.stderr}"
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(folder):
    """Write a file until the disk refuses another byte; return its path."""
    path = folder / "filler"
    with open(path, "wb", buffering=0) as handle:
        for size in (65536, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue
    return path


class BindMount:
    """A folder on a bind mount of its own, which a test may make read-only and writable again."""

    def __init__(self, path):
        self.path = path
        path.mkdir()
        self._mount("--bind", str(path), str(path))

    def _mount(self, *arguments):
        done = subprocess.run(["mount", *arguments], capture_output=True, text=True)
        assert done.returncode == 0, f"this test mounts a folder, which needs root (as CI runs): {done.stderr}"

    def read_only(self):
        self._mount("-o", "remount,bind,ro", str(self.path))

    def writable(self):
        self._mount("-o", "remount,bind,rw", str(self.path))

    def unmount(self):
        subprocess.run(["umount", "-l", str(self.path)], check=True)


@pytest.fixture
def data_folder(tmp_path):
    mount = BindMount(tmp_path / "data")
    yield mount
    mount.unmount()


@pytest.mark.e2e
def test_a_read_only_database_loses_no_record_and_is_written_once_it_is_writable(gunicorn, data_folder, tmp_path):
    settings = dict(DATABASE_URL=f"sqlite:///{data_folder.path}/proxy.db", SPOOL_DIR=str(tmp_path / "spool"),
                    SPOOL_REPLAY_SECONDS="0.3", WEB_CONCURRENCY=1)
    server = gunicorn(**settings)
    assert all(r.status_code == 200 for r in send(server, 3))
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(3,)], message="3 rows")
    server.stop()

    data_folder.read_only()  # say, a volume mounted read-only by mistake
    server = gunicorn(**settings)
    answered = send(server, 10) + send(server, 5, kind="native")
    assert [r.status_code for r in answered] == [200] * 15
    wait_for(lambda: health(server)["status"] == "degraded", message="health to say the records wait")
    assert health(server)["spool"]["depth"] == 15
    assert rows(server.database_url, "SELECT count(*) FROM request_log") == [(3,)]

    # SQLite opened the file read-only, and such a connection stays read-only: without a new one the
    # records waited for ever.
    data_folder.writable()
    wait_for(lambda: health(server)["spool"]["depth"] == 0, message="the spooled records written")
    ids = {r.headers["X-Request-ID"] for r in answered}
    logged = [r for (r,) in rows(server.database_url, "SELECT request_id FROM request_log")]
    assert len(logged) == 18 and ids <= set(logged)
    assert rows(server.database_url, "SELECT count(*) FROM exchanges") == [(5,)]
    assert health(server)["status"] == "ok"
    assert "attempt to write a readonly database" in server.output()


@pytest.mark.e2e
def test_a_full_disk_loses_no_record(gunicorn, small_disk):
    server = gunicorn(DATABASE_URL=f"sqlite:///{small_disk}/proxy.db", SPOOL_REPLAY_SECONDS="0.3")
    assert all(r.status_code == 200 for r in send(server, 5))
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(5,)], message="5 rows")

    filler = fill(small_disk)  # the database and the spool share the disk, now full
    answered = send(server, 10) + send(server, 10, kind="native")
    assert [r.status_code for r in answered] == [200] * 20
    wait_for(lambda: health(server)["status"] == "degraded", message="health to say the records wait")

    filler.unlink()
    wait_for(lambda: len({r for (r,) in rows(server.database_url, "SELECT request_id FROM request_log")}) == 25,
             message="every record written once the disk has room")
    ids = {r.headers["X-Request-ID"] for r in answered}
    logged = rows(server.database_url, "SELECT request_id FROM request_log")
    assert len(logged) == 25 and ids <= {r for (r,) in logged}
    wait_for(lambda: health(server)["status"] == "ok", message="health to recover")
    output = server.output()
    # The spool's disk refused them too: at a new file, or part-way through a line of the open one.
    assert "the spool's disk refuses records ([Errno 28] No space left on device" in output
    assert "holding them in memory" in output
    assert "FAILED TO RECORD" not in output


def test_a_process_stopping_mid_write_waits_for_it_and_writes_each_record_once(make_app, tmp_path, caplog):
    app = make_app(SPOOL_DIR=str(tmp_path / "spool"), SQLITE_BUSY_TIMEOUT_SECONDS=5, RECORD_GATHER_SECONDS=0.01)
    client = app.test_client()
    client.get("/health")  # the tables exist before the lock is taken
    writer = app.extensions["records"]
    writer.start()  # the background loop, as in a served worker
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    locker = sqlite3.connect(url.split("///", 1)[1], timeout=5, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # the loop's write waits on the lock
    answered = [client.post("/gemini/generate", json={"prompt": {"text": f"q{n}"}}) for n in range(5)]
    assert [r.status_code for r in answered] == [200] * 5
    wait_for(lambda: any(path.endswith(".replaying") for path in app.extensions["spool"].files()),
             message="the loop to claim the spool file")
    releaser = threading.Timer(0.5, locker.rollback)
    releaser.start()
    try:
        writer.close()  # as at exit, while the loop's write is under way
    finally:
        releaser.join()
        locker.close()
    logged = rows(url, "SELECT request_id FROM request_log")
    assert sorted(r for (r,) in logged) == sorted(r.headers["X-Request-ID"] for r in answered)
    assert app.extensions["spool"].files() == []
    assert "record writer failed" not in caplog.text


def test_a_batch_of_spooled_records_links_every_row_to_its_own_request(make_app, tmp_path):
    app = make_app(SPOOL_DIR=str(tmp_path / "spool"), SQLITE_BUSY_TIMEOUT_SECONDS=0.1)
    client = app.test_client()
    for n in range(3):  # rows already there: the batch's ids do not start at 1
        assert client.post("/gemini/generate", json={"prompt": {"text": f"before {n}"}}).status_code == 200
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    locker = sqlite3.connect(url.split("///", 1)[1])
    locker.execute("BEGIN EXCLUSIVE")  # every record waits in the spool, to be written as one batch
    prompts = {}
    try:
        for n in range(8):
            text = "word " * (n * 7 + 1)  # a prompt of its own length, so its token count is its own
            if n % 2:
                answer = client.post("/gemini/generate", json={"prompt": {"text": text}})
            else:
                answer = client.post(native_path(), json={"contents": [{"parts": [{"text": text}]}]},
                                     headers={"x-goog-api-key": KEYS[0]})
            assert answer.status_code == 200
            prompts[answer.headers["X-Request-ID"]] = text
    finally:
        locker.rollback()
        locker.close()
    assert "replayed 8" in app.extensions["records"].replay()

    logged = rows(url, "SELECT r.request_id, r.prompt_tokens, r.attempt_count, m.prompt_tokens, "
                       "(SELECT count(*) FROM attempts a WHERE a.request_log_id = r.id) "
                       "FROM request_log r JOIN metrics m ON m.id = r.metric_id")
    batch = {row[0]: row[1:] for row in logged if row[0] in prompts}
    assert len(batch) == 8 and len({tokens for tokens, *_ in batch.values()}) == 8
    assert all(tokens == metric_tokens and attempts == linked == 1
               for tokens, attempts, metric_tokens, linked in batch.values())
    bodies = rows(url, "SELECT r.request_id, b.request_body FROM request_log r JOIN exchanges x "
                       "ON x.request_log_id = r.id JOIN exchange_bodies b ON b.exchange_id = x.id")
    stored = {request_id: json.loads(zlib.decompress(body)) for request_id, body in bodies if request_id in prompts}
    assert len(stored) == 4
    assert all(body["contents"][0]["parts"][0]["text"] == prompts[request_id] for request_id, body in stored.items())
