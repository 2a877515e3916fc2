"""Rollups, retention and the batch poller run once per deployment: the host's flock first, then (on
PostgreSQL) an advisory lock in the database every instance shares. Shown on SQLite without processes,
and on a real PostgreSQL with two "instances" (apps with their own local folders) and a holder killed."""
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import create_engine, text

from proxy.periodic import SETTINGS_VARIABLE, one_per_deployment
from proxy.storage.deployment_lock import deployment_lock, lock_key
from tests.conftest import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_lock_keys_are_stable_signed_bigints_one_per_name():
    names = ["rollup", "retention", "batch-usage"]
    keys = [lock_key(name) for name in names]
    assert len(set(keys)) == 3
    assert all(-2**63 <= key < 2**63 for key in keys)
    assert lock_key("rollup") == lock_key("rollup")  # not hash(): the same in every process
    assert lock_key("rollup") == -1652559184526002922  # what every deployed version takes


def test_on_sqlite_the_host_lock_is_the_deployment_lock(app):
    with app.app_context():
        with deployment_lock(app.extensions["sqlalchemy"].engine, "rollup") as mine:
            assert mine  # one host holds the file: nothing to take in the database
        with one_per_deployment(app, "rollup") as first:
            with one_per_deployment(app, "rollup") as second:
                assert (first, second) == (True, False)
            with one_per_deployment(app, "retention") as other_job:
                assert other_job  # each job has its own lock
        with one_per_deployment(app, "rollup") as again:
            assert again  # released on leaving


def test_two_apps_on_one_sqlite_file_take_turns(make_app):
    first, second = make_app(), make_app()  # the same file, as two workers of one host
    with first.app_context(), one_per_deployment(first, "batch-usage") as mine:
        with second.app_context(), one_per_deployment(second, "batch-usage") as theirs:
            assert (mine, theirs) == (True, False)


def test_the_lock_is_released_when_the_job_raises(app):
    with app.app_context():
        with pytest.raises(RuntimeError):
            with one_per_deployment(app, "rollup"):
                raise RuntimeError("the job failed")
        with one_per_deployment(app, "rollup") as mine:
            assert mine


def _instance(make_app, postgres, folder):
    """An app on the shared PostgreSQL with local files of its own, as another instance's would be."""
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres.url)
    os.makedirs(folder, exist_ok=True)
    app.instance_path = str(folder)
    return app


@pytest.mark.e2e
def test_two_instances_on_postgresql_contend_and_exactly_one_runs_a_round(make_app, postgres, tmp_path):
    instances = [_instance(make_app, postgres, tmp_path / name) for name in ("a", "b")]
    tried, both_tried = [], threading.Barrier(2, timeout=30)

    def round_of(app):
        with app.app_context(), one_per_deployment(app, "rollup") as mine:
            tried.append(mine)
            both_tried.wait()  # the holder keeps its lock until the other has tried

    for _ in range(3):
        tried.clear()
        threads = [threading.Thread(target=round_of, args=(app,)) for app in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(tried) == [False, True]
    # Between rounds nothing is left held: each instance takes it alone.
    for app in instances:
        with app.app_context(), one_per_deployment(app, "rollup") as mine:
            assert mine
    # A pooled connection never kept it: the pool's sessions hold no advisory lock.
    engine = create_engine(postgres.url)
    try:
        with engine.connect() as connection:
            held = connection.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()
        assert held == 0
    finally:
        engine.dispose()


_HOLDER = """
import sys, time
from sqlalchemy import create_engine, text
from proxy.storage.deployment_lock import deployment_lock
with deployment_lock(create_engine(sys.argv[1]), "retention") as mine:
    print("held" if mine else "refused", flush=True)
    time.sleep(600)
"""


@pytest.mark.e2e
def test_a_holder_that_dies_frees_the_lock(make_app, postgres, tmp_path):
    app = _instance(make_app, postgres, tmp_path / "a")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, postgres.url], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert holder.stdout.readline().strip() == "held"
        with app.app_context(), one_per_deployment(app, "retention") as mine:
            assert not mine  # another instance holds it
        os.kill(holder.pid, signal.SIGKILL)  # no unlock, no clean close: the server sees the socket go
        holder.wait(30)

        def free():
            with app.app_context(), one_per_deployment(app, "retention") as mine:
                return mine

        wait_for(free, message="the dead holder's lock freed")
    finally:
        holder.kill()
        holder.wait(30)


@pytest.mark.e2e
def test_a_maintenance_process_skips_the_round_another_instance_holds(make_app, postgres, tmp_path):
    app = _instance(make_app, postgres, tmp_path / "a")
    settings = {"SQLALCHEMY_DATABASE_URI": postgres.url, "SQLITE_BUSY_TIMEOUT_SECONDS": 5, "LOG_LEVEL": "DEBUG",
                "RETENTION_DAYS": 30, "BODY_RETENTION_DAYS": 7}

    def run_job():
        return subprocess.run([sys.executable, "-m", "proxy.maintenance", "retention"], capture_output=True,
                              text=True, cwd=ROOT, timeout=60,
                              env={**os.environ, "PYTHONPATH": ROOT, SETTINGS_VARIABLE: json.dumps(settings)})

    with app.app_context(), one_per_deployment(app, "retention") as mine:
        assert mine
        skipped = run_job()
    assert skipped.returncode == 0, skipped.stderr
    assert "retention: another instance runs it this round" in skipped.stdout + skipped.stderr
    ran = run_job()
    assert ran.returncode == 0, ran.stderr
    assert "another instance" not in ran.stdout + ran.stderr
