"""The scripts as a developer runs them. scripts/test on a machine that lacks the system packages and cannot
install them stops at once, naming them, before it builds anything (as root with apt-get it would install
them instead); scripts/serve stops on Ctrl-C without a traceback, and takes its emulator with it."""
import glob
import os
import shutil
import signal
import socket
import subprocess

import pytest
import requests

from tests import processes
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

# What the scripts run before the check; no redis-server, nginx, chromium or apt-get among them.
TOOLS = ("bash", "python3", "id", "cat", "dirname", "sha256sum", "cut")


def bare_machine(tmp_path):
    """A PATH holding only TOOLS (the PostgreSQL check looks at Debian's path, present here)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        # The interpreter itself, not a launcher (pyenv's shims) that looks for more on the PATH.
        found = os.path.realpath(processes.PYTHON) if tool == "python3" else shutil.which(tool)
        os.symlink(found, folder / tool)
    return processes.base_env(PATH=str(folder), VENV=str(tmp_path / "venv"))


def run(argv, env):
    return subprocess.run(argv, cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_scripts_test_stops_at_once_naming_the_missing_packages(tmp_path):
    env = bare_machine(tmp_path)
    done = run(["bash", "scripts/test", "-q"], env)
    assert done.returncode == 1, done.stdout + done.stderr
    # Found outside the PATH, at Debian's own paths, when installed: nginx and PostgreSQL.
    expected = ["redis-server", *([] if os.path.exists("/usr/sbin/nginx") else ["nginx"]),
                *([] if glob.glob("/usr/lib/postgresql/*/bin/postgres") else ["postgresql"]), "chromium",
                "nodejs", "npm"]
    assert f"which are missing: {' '.join(expected)}\n" in done.stderr, done.stderr
    assert "apt-get install" in done.stderr and 'scripts/test -m "not e2e"' in done.stderr
    assert not (tmp_path / "venv").exists()  # stopped before building anything


def test_the_fast_tier_needs_only_pythons_venv_module(tmp_path):
    done = run(["bash", "scripts/system-packages", "--python-only"], bare_machine(tmp_path))
    assert done.returncode == 0 and done.stderr == ""


def test_ctrl_c_stops_scripts_serve_and_its_emulator_without_a_traceback(tmp_path):
    port, emulator_port = processes.free_port(), processes.free_port()
    # No key: it serves against the emulator it starts (an empty one is not taken from a developer's .env).
    env = processes.base_env(GEMINI_API_KEY="", PORT=port, EMULATOR_PORT=emulator_port, WEB_CONCURRENCY=2,
                             DATABASE_URL=f"sqlite:///{tmp_path / 'proxy.db'}", SPOOL_DIR=tmp_path / "spool",
                             VENV=os.path.dirname(processes.BIN))
    serve = processes.Process("scripts/serve", ["bash", "scripts/serve"], env, processes.ROOT,
                              f"http://127.0.0.1:{port}/health", str(tmp_path / "serve.log"))
    try:
        serve.wait_ready(60, log_marker="Worker ready", count=2)
        answer = requests.post(f"http://127.0.0.1:{port}/gemini/generate", json={"prompt": {"text": "hi"}}, timeout=30)
        assert answer.status_code == 200
        os.killpg(serve.proc.pid, signal.SIGINT)  # what Ctrl-C does: every process of the terminal's group
        assert serve.proc.wait(30) == 0
    finally:
        serve.stop()
    out = serve.output()
    assert "Handling signal: int" in out and "Shutting down: Master" in out
    assert "Traceback" not in out and "SystemExit" not in out, out
    wait_for(lambda: _closed(emulator_port), timeout=10, message="the emulator's port to close")


def _closed(port):
    """Whether nothing listens on `port` (the emulator's process may take a moment to release it)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False
