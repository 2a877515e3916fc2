"""Schemathesis against a running server's /swagger.json: every operation, with client and admin keys;
no 5xx, and every answer matches what the document says (status, body schema, headers such as Allow)."""
import os
import subprocess

import pytest
import requests

from tests import processes
from tests.conftest import KEYS, MODELS, rows, wait_for

pytestmark = pytest.mark.e2e

CLIENT_KEY = "client-key-for-fuzzing-012345678"
ADMIN_KEY = "admin-key-for-fuzzing-0123456789"
EXAMPLES = 25  # per operation and phase: the whole run stays within a minute or two on a shared machine
SEED = 15  # the same cases every run, so a failure reproduces


def _config(request_id):
    """Which key each operation is called with, and a request the log does hold, so that the request detail
    is fuzzed past its 404."""
    admin, client = f'headers = {{ X-API-KEY = "{ADMIN_KEY}" }}', f'headers = {{ X-API-KEY = "{CLIENT_KEY}" }}'
    return (f'[[operations]]\ninclude-name = "GET /analytics/requests/{{request_id}}"\n{admin}\n'
            f'parameters = {{ request_id = "{request_id}" }}\n\n'
            f'[[operations]]\ninclude-path-regex = "^/(admin|analytics)"\n{admin}\n\n'
            f'[[operations]]\ninclude-path-regex = "^/(gemini|health)"\n{client}\n')


def _schemathesis(config, url, *selection):
    """`st run` with every check but one: operator settings (allowed models, prompt caps) refuse some
    schema-valid input by design (positive_data_acceptance). Returns the exit code and the report."""
    argv = [os.path.join(processes.BIN, "st"), "--config-file", str(config), "run", f"{url}/swagger.json",
            "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1", "--no-color",
            "--exclude-checks", "positive_data_acceptance", "--generation-database", "none", *selection]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=config.parent)
    return done.returncode, done.stdout + done.stderr


def test_every_documented_operation_conforms(gunicorn, emulator, tmp_path):
    server = gunicorn(API_KEYS=CLIENT_KEY, ADMIN_API_KEY=ADMIN_KEY)
    client = {"X-API-KEY": CLIENT_KEY}
    # History for the reports to describe: a generation, a native call, a refusal.
    generated = requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": "hi"}}, headers=client,
                              timeout=30)
    requests.post(f"{server.url}/v1beta/models/{MODELS[0]}:generateContent",
                  json={"contents": [{"parts": [{"text": "hi"}]}]}, headers=client, timeout=30)
    requests.post(f"{server.url}/gemini/generate", json={"prompt": {}}, headers=client, timeout=30)
    request_id = generated.headers["X-Request-ID"]
    wait_for(lambda: len(rows(server.database_url, "SELECT id FROM request_log")) == 3, message="the records")
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(request_id))
    spec = requests.get(f"{server.url}/swagger.json", timeout=30).json()
    assert {path for path in spec["paths"]} >= {"/gemini/generate", "/gemini-proxy", "/health", "/admin/clients",
                                                "/analytics/summary", "/analytics/requests/{request_id}"}

    # Operator endpoints last: fuzzing revoke and rotate would otherwise revoke the client key the rest use.
    for selection in (("--exclude-path-regex", "^/admin"), ("--include-path-regex", "^/admin")):
        code, report = _schemathesis(config, server.url, *selection)
        assert code == 0, report[-12000:]
    assert emulator.stats()["total"] > 1  # generated requests did reach Gemini, not only validation
