"""The Gemini CLI from npm (@google/gemini-cli, pinned in scripts/gemini-cli), unchanged, through the proxy:
headless `gemini -p` over two Gunicorn workers and a pool of server keys, with a client key (in either of the
CLI's ways of sending it) and with none. The CLI first asks a small model which model to route to (JSON mode),
then streams from the one it picked; a tool call and its answer go back with the thought signature, to the key
that made it."""
import hashlib
import json
import os
import subprocess

import pytest
import requests

from tests.conftest import KEYS, rows, wait_settled
from tests.processes import ROOT

pytestmark = pytest.mark.e2e

CLIENT_KEY = "cli-client-key-0123456789"
ADMIN_KEY = "cli-admin-key-0123456789"  # /metrics, which wait_settled reads, wants it once clients exist
SERVER_KEYS = KEYS[:2]
ROUTER_MODEL = "gemini-3.5-flash-lite"  # the CLI 0.61's classifier model (its models.js)
# The models the CLI 0.61 streams from: the router's flash or pro pick, or its default when routing fails.
CLI_MODELS = {"gemini-3.8-flash", "gemini-3.5-flash", "gemini-3-flash-preview", "gemini-3-flash",
              "gemini-3.1-pro-preview", "gemini-3-pro-preview", "gemini-2.5-pro"}
# What a user puts in ~/.gemini/settings.json (README's "Gemini CLI" section): an API key's auth, and the
# CLI's update checks and usage statistics off, so that it calls nothing but the proxy.
QUIET = {"general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
         "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False}}
WITH_KEY = {"security": {"auth": {"selectedType": "gemini-api-key"}}, **QUIET}
# With no key the CLI 0.61 refuses "gemini-api-key" auth; GOOGLE_GEMINI_BASE_URL's own auth type ("gateway")
# sends `x-goog-api-key: ''`, once the CLI is told not to check for a key itself ("useExternal").
WITHOUT_KEY = {"security": {"auth": {"selectedType": "gateway", "useExternal": True}}, **QUIET}
RUNS = 3  # tool conversations over three keys: without pinning, each answer finds its key by chance once in 3
CLI_TIMEOUT = 120  # seconds for one headless run; it takes a few against the emulator
INSTALL_TIMEOUT = 600  # seconds for npm to install the pinned CLI, once


@pytest.fixture(scope="module")
def gemini_cli():
    """The path of the pinned CLI's binary, installed on first use into .cache/gemini-cli."""
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gemini-cli")], capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def server_with_clients(gunicorn):
    return gunicorn(GEMINI_API_KEY=",".join(SERVER_KEYS), API_KEYS=CLIENT_KEY, ADMIN_API_KEY=ADMIN_KEY,
                    WEB_CONCURRENCY=2)


def run_cli(binary, server, home, prompt, settings, key=None, **variables):
    """`gemini -p PROMPT --skip-trust --output-format json` in a workspace of its own, HOME holding
    `settings` as ~/.gemini/settings.json; its JSON answer. Any call to another host than the proxy goes to
    a closed port, so it fails at once instead of reaching out."""
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    workspace = home / "workspace"
    workspace.mkdir(exist_ok=True)
    (workspace / "notes.txt").write_text("Notes to keep.\n")
    (home / "tmp").mkdir(exist_ok=True)  # where the CLI writes its error reports
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home / "tmp"), "NO_COLOR": "1",
           "GOOGLE_GEMINI_BASE_URL": server.url,
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
    if key is not None:
        env["GEMINI_API_KEY"] = key
    env.update(variables)
    done = subprocess.run([binary, "-p", prompt, "--skip-trust", "--output-format", "json"], cwd=workspace, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    said = "\n".join(line for line in done.stderr.splitlines() if not line.lstrip().startswith("at "))
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{said[-3000:]}"
    answer = json.loads(done.stdout)
    assert "error" not in answer, answer
    return answer


def calls(server):
    """The proxy's records of what it forwarded: (action, model, streamed, status, client, key source)."""
    return rows(server.database_url, "SELECT e.action, r.model_used, r.streamed, r.status_code, r.client_id, "
                "e.key_source FROM request_log r JOIN exchanges e ON e.request_log_id = r.id ORDER BY r.id")


def assert_only_server_keys_reached_gemini(emulator, client_key=None, server_keys=SERVER_KEYS):
    received = emulator.received()
    assert received, "nothing reached the emulator"
    assert {r["headers"].get("x-goog-api-key") for r in received} <= set(server_keys)
    if client_key:
        assert client_key not in json.dumps(received) + json.dumps(emulator.requests())


def client_id(server, key):
    """The id the proxy gave the client of `key` (it keeps the key's SHA-256, never the key)."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    [(found,)] = rows(server.database_url, f"SELECT id FROM api_clients WHERE key_hash = '{digest}'")
    return found


def assert_routed_then_streamed(records, client):
    """The CLI's two calls: the router's JSON-mode generateContent, then the stream from its pick."""
    assert len(records) == 2, records
    # Two workers write their own records: by action, the router's ("generateContent") comes first.
    router, stream = sorted(records, key=lambda record: record[0])
    assert router == ("generateContent", ROUTER_MODEL, False, 200, client, "server")
    assert stream[0] == "streamGenerateContent" and stream[1] in CLI_MODELS, stream
    assert stream[2:] == (True, 200, client, "server")
    return stream[1]


# How the CLI sends its key: in x-goog-api-key, or (for gateways) also as Authorization: Bearer, the same key.
MECHANISMS = {"x-goog-api-key": {}, "bearer": {"GEMINI_API_KEY_AUTH_MECHANISM": "bearer"}}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_cli_with_a_client_key_is_answered_on_the_proxys_keys(server_with_clients, emulator, gemini_cli,
                                                                   tmp_path, mechanism):
    server = server_with_clients
    assert requests.get(f"{server.url}/health", timeout=10).json()["auth"] == "keys"
    answer = run_cli(gemini_cli, server, tmp_path / "home", "Say hello", WITH_KEY, key=CLIENT_KEY,
                     **MECHANISMS[mechanism])

    wait_settled(server, ADMIN_KEY)
    model = assert_routed_then_streamed(calls(server), client_id(server, CLIENT_KEY))
    assert answer["response"].startswith(f"Emulated {model} answer to:"), answer["response"]
    # The CLI's own account of its calls: the router's and the stream's, both answered.
    assert set(answer["stats"]["models"]) == {ROUTER_MODEL, model}
    assert all(m["api"]["totalErrors"] == 0 for m in answer["stats"]["models"].values())
    # What the CLI counted of each call is what the proxy recorded (and bills): prompt, thoughts, total.
    counted = {name: (m["tokens"]["prompt"], m["tokens"]["thoughts"], m["tokens"]["total"])
               for name, m in answer["stats"]["models"].items()}
    recorded = rows(server.database_url, "SELECT model_used, prompt_tokens, thoughts_tokens, total_tokens "
                    "FROM request_log")
    assert {used: tuple(tokens) for used, *tokens in recorded} == counted
    assert counted[model][1] > 0  # the CLI asks Gemini 3 to think (thinkingLevel HIGH)
    routed, streamed = emulator.requests()
    assert (routed["action"], routed["model"], streamed["action"], streamed["model"]) == (
        "generateContent", ROUTER_MODEL, "streamGenerateContent", model)
    assert streamed["body"]["contents"][-1]["parts"][-1] == {"text": "Say hello"}
    assert_only_server_keys_reached_gemini(emulator, CLIENT_KEY)


@pytest.mark.parametrize("key", [None, ""], ids=["no-key", "empty-key"])
def test_the_cli_with_no_key_is_answered_by_an_open_proxy(gunicorn, emulator, gemini_cli, tmp_path, key):
    server = gunicorn(GEMINI_API_KEY=",".join(SERVER_KEYS), WEB_CONCURRENCY=2)
    assert requests.get(f"{server.url}/health", timeout=10).json()["auth"] == "open"
    answer = run_cli(gemini_cli, server, tmp_path / "home", "Say hello", WITHOUT_KEY, key=key)

    wait_settled(server)
    model = assert_routed_then_streamed(calls(server), None)
    assert answer["response"].startswith(f"Emulated {model} answer to:"), answer["response"]
    # The CLI sent an empty key; the proxy put one of its own in its place.
    assert {r["key"] for r in emulator.requests()} <= set(SERVER_KEYS)
    assert_only_server_keys_reached_gemini(emulator)


def test_tool_calls_and_their_answers_stay_on_the_key_that_signed_them(gunicorn, emulator, gemini_cli, tmp_path):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS), API_KEYS=CLIENT_KEY, ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=2)
    for run in range(RUNS):
        emulator.reset()
        # Naming a declared tool in the prompt makes the emulator call it; the CLI runs it (list_directory is
        # read-only) and sends its result back after the model's turn, thought signature and all.
        answer = run_cli(gemini_cli, server, tmp_path / f"home-{run}", "Please call list_directory on this folder",
                         WITH_KEY, key=CLIENT_KEY)
        assert answer["stats"]["tools"]["byName"]["list_directory"]["count"] == 1
        assert answer["response"].startswith("The function list_directory returned"), answer["response"]

        call_turn, answer_turn = [r for r in emulator.requests() if r["action"] == "streamGenerateContent"]
        asked = answer_turn["body"]["contents"][-2]
        assert asked["role"] == "model" and asked["parts"][0]["functionCall"]["name"] == "list_directory"
        assert asked["parts"][0]["thoughtSignature"]
        assert answer_turn["body"]["contents"][-1]["parts"][0]["functionResponse"]["name"] == "list_directory"
        # The signature is bound to its key's project: the answer went to the key that made it (the emulator,
        # as Gemini, refuses it on another key with a 400, and the CLI would have failed).
        assert call_turn["key"] == answer_turn["key"]
        assert_only_server_keys_reached_gemini(emulator, CLIENT_KEY, KEYS)

    wait_settled(server, ADMIN_KEY)
    records = calls(server)
    # Each worker writes its own records, so rows of the runs need not come in the order of the calls.
    assert sorted(r[0] for r in records) == sorted(["generateContent", "streamGenerateContent",
                                                    "streamGenerateContent"] * RUNS)
    assert {r[3:] for r in records} == {(200, client_id(server, CLIENT_KEY), "server")}
