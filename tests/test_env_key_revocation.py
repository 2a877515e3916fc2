"""A client from API_KEYS revoked or rotated through /admin or the CLI stays refused across restarts until
an operator restores it."""
import os
import subprocess

import pytest
import requests
from sqlalchemy import create_engine

from proxy.access import clients
from tests import processes
from tests.schemas import as_before_migrations
from tests.conftest import ADMIN_KEY, rows

REVOKED = "env-key-to-revoke-1234567890"
ROTATED = "env-key-to-rotate-1234567890"
ADMIN = {"X-API-KEY": ADMIN_KEY}


def status_with(server, key):
    response = requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": "hi"}},
                             headers={"X-API-KEY": key}, timeout=30)
    return response.status_code


def listed(server):
    response = requests.get(f"{server.url}/admin/clients", headers=ADMIN, timeout=10)
    assert response.status_code == 200
    return {client["name"]: client for client in response.json()}


def name_of(key):
    return f"env-{clients.hash_key(key)[:8]}"


def keys_cli(server, tmp_path, *args):
    """`flask --app wsgi keys ...` run as an operator would, against the server's database and settings."""
    env = processes.base_env(DATABASE_URL=server.database_url, API_KEYS=f"{REVOKED},{ROTATED}",
                             ADMIN_API_KEY=ADMIN_KEY, GEMINI_MODELS="gemini-2.5-flash")
    return subprocess.run([os.path.join(processes.BIN, "flask"), "--app", "wsgi", "keys", *args], env=env,
                          cwd=processes.ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.e2e
def test_revoked_and_rotated_api_keys_stay_refused_across_restarts_until_restored(gunicorn, tmp_path):
    settings = dict(API_KEYS=f"{REVOKED},{ROTATED}", ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=2)
    server = gunicorn(**settings)
    assert status_with(server, REVOKED) == 200 and status_with(server, ROTATED) == 200
    before = listed(server)
    revoked_id, rotated_id = before[name_of(REVOKED)]["id"], before[name_of(ROTATED)]["id"]

    assert requests.post(f"{server.url}/admin/clients/{revoked_id}/revoke", headers=ADMIN,
                         timeout=10).status_code == 200
    rotation = requests.post(f"{server.url}/admin/clients/{rotated_id}/rotate", headers=ADMIN, timeout=10)
    assert rotation.status_code == 200
    new_secret = rotation.json()["api_key"]
    assert [status_with(server, key) for key in (REVOKED, ROTATED, new_secret)] == [401, 401, 200]

    server.stop()  # every worker seeds API_KEYS again when it starts
    server = gunicorn(**settings)
    assert [status_with(server, key) for key in (REVOKED, ROTATED, new_secret)] == [401, 401, 200]
    assert rows(server.database_url, "SELECT COUNT(*) FROM api_clients") == [(2,)]  # nothing seeded anew
    after = listed(server)
    assert (after[name_of(REVOKED)]["state"], after[name_of(REVOKED)]["from_api_keys"]) == ("revoked", True)
    assert (after[name_of(ROTATED)]["state"], after[name_of(ROTATED)]["from_api_keys"]) == ("rotated", True)
    shown = keys_cli(server, tmp_path, "list")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[1]: line for line in shown.stdout.splitlines()}
    assert "revoked" in lines[name_of(REVOKED)] and "API_KEYS" in lines[name_of(REVOKED)]
    assert "rotated" in lines[name_of(ROTATED)] and "API_KEYS" in lines[name_of(ROTATED)]

    # An operator undoes both: the revocation over HTTP, the rotation with the CLI.
    restored = requests.post(f"{server.url}/admin/clients/{revoked_id}/restore", headers=ADMIN, timeout=10)
    assert restored.status_code == 200 and restored.json()["state"] == "active"
    cli = keys_cli(server, tmp_path, "restore", str(rotated_id))
    assert cli.returncode == 0 and "Restored" in cli.stdout, cli.stderr
    assert [status_with(server, key) for key in (REVOKED, ROTATED, new_secret)] == [200, 200, 401]

    server.stop()
    server = gunicorn(**settings)
    assert [status_with(server, key) for key in (REVOKED, ROTATED, new_secret)] == [200, 200, 401]
    assert {client["state"] for client in listed(server).values()} == {"active"}
    assert rows(server.database_url, "SELECT COUNT(*) FROM api_clients") == [(2,)]
    log = server.output()
    assert REVOKED not in log and ROTATED not in log and new_secret not in log


def generate(client, key):
    return client.post("/gemini/generate", json={"prompt": {"text": "hi"}}, headers={"X-API-KEY": key}).status_code


def env_client_id(app, key):
    with app.app_context():
        return clients.resolve(name_of(key)).id


def test_api_keys_seeding_respects_the_operator_and_follows_the_setting(make_app):
    first = make_app(API_KEYS=[REVOKED, ROTATED], ADMIN_API_KEY=ADMIN_KEY)
    first.test_cli_runner().invoke(args=["keys", "revoke", name_of(REVOKED)])
    rotated = first.test_cli_runner().invoke(args=["keys", "rotate", name_of(ROTATED)])
    new_secret = rotated.output.strip().splitlines()[-1]

    # Both keys taken out of API_KEYS: the rotated client keeps its own secret.
    client = make_app(API_KEYS=[], ADMIN_API_KEY=ADMIN_KEY).test_client()
    assert [generate(client, key) for key in (REVOKED, ROTATED, new_secret)] == [401, 401, 200]
    # Listed again: still refused; restoring needs the key to be listed.
    dropped = make_app(API_KEYS=[ROTATED], ADMIN_API_KEY=ADMIN_KEY)
    client = dropped.test_client()
    assert [generate(client, key) for key in (REVOKED, ROTATED, new_secret)] == [401, 401, 200]
    refused = client.post(f"/admin/clients/{env_client_id(dropped, REVOKED)}/restore", headers=ADMIN)
    assert refused.status_code == 400 and refused.json["error"]["code"] == "INVALID_REQUEST"
    assert "no longer in API_KEYS" in refused.json["error"]["message"]
    assert client.post("/admin/clients/999/restore", headers=ADMIN).status_code == 404
    runner = dropped.test_cli_runner()
    assert runner.invoke(args=["keys", "restore", "nobody"]).exit_code != 0
    restored = runner.invoke(args=["keys", "restore", name_of(ROTATED)])
    assert restored.exit_code == 0 and "active" in restored.output
    assert [generate(client, key) for key in (ROTATED, new_secret)] == [200, 401]


def test_restore_of_a_key_issued_by_the_proxy(make_app):
    app = make_app(ADMIN_API_KEY=ADMIN_KEY)
    client = app.test_client()
    issued = client.post("/admin/clients", json={"name": "ci"}, headers=ADMIN).json
    url = f"/admin/clients/{issued['id']}"
    assert client.post(f"{url}/restore", headers=ADMIN).json["state"] == "active"  # nothing to undo
    client.post(f"{url}/revoke", headers=ADMIN)
    assert generate(client, issued["api_key"]) == 401
    restored = client.post(f"{url}/restore", headers=ADMIN)
    assert restored.status_code == 200 and restored.json["state"] == "active"
    assert restored.json["from_api_keys"] is False and generate(client, issued["api_key"]) == 200
    rotated = client.post(f"{url}/rotate", headers=ADMIN).json
    assert rotated["state"] == "rotated"
    refused = client.post(f"{url}/restore", headers=ADMIN)  # the old secret is not kept
    assert refused.status_code == 400 and "not kept" in refused.json["error"]["message"]
    assert generate(client, issued["api_key"]) == 401 and generate(client, rotated["api_key"]) == 200


def test_an_api_keys_client_from_the_previous_version_is_known_and_its_revocation_sticks(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    make_app(API_KEYS=[REVOKED])
    as_before_migrations(url)  # that version came before migrations
    engine = create_engine(url)
    with engine.begin() as connection:  # the table as the version before env_key_hash left it
        connection.exec_driver_sql("DROP INDEX ix_api_clients_env_key_hash")
        connection.exec_driver_sql("ALTER TABLE api_clients DROP COLUMN env_key_hash")
        connection.exec_driver_sql("ALTER TABLE api_clients DROP COLUMN env_key_refused")
    engine.dispose()
    upgraded = make_app(API_KEYS=[REVOKED])
    assert rows(url, "SELECT env_key_hash FROM api_clients") == [(clients.hash_key(REVOKED),)]
    upgraded.test_cli_runner().invoke(args=["keys", "revoke", name_of(REVOKED)])
    client = make_app(API_KEYS=[REVOKED]).test_client()
    assert generate(client, REVOKED) == 401
    assert rows(url, "SELECT COUNT(*), MIN(env_key_refused) FROM api_clients") == [(1, "revoked")]
