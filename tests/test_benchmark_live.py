"""scripts/benchmark.py --quick --only live, as a developer runs it: the Live section alone, measured against a
real Gunicorn worker and the emulator, written in place of its old one with every other section left as it was."""
import os
import re
import subprocess

import pytest

from tests import processes

pytestmark = pytest.mark.e2e

BEFORE = """# Benchmarks

Run long ago.

## Memory (resident set of the one worker)

- idle: 1 MiB.

## Live API (an old run)

| old | row |

## Analytics over 1 logged requests (30 days, rolled up)

| report | window | ms (best of 3) |
"""


def test_only_live_replaces_the_live_section_with_every_session_answered_and_let_go(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(BEFORE)
    done = subprocess.run([processes.PYTHON, os.path.join(processes.ROOT, "scripts", "benchmark.py"), "--quick",
                           "--only", "live", "--output", str(output)], cwd=processes.ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    text = output.read_text()
    assert "| old | row |" not in text and text.count("## Live API") == 1
    head, live = text.split("## Live API", 1)
    live, analytics = live.split("## Analytics", 1)
    assert head == BEFORE.split("## Live API")[0] and analytics == BEFORE.split("## Analytics", 1)[1]
    assert "with `python scripts/benchmark.py --quick --only live`" in live
    assert re.search(r"\| setupComplete after the client's setup, a session opened alone \| 30 \| [\d.]+ \|", live)
    added = re.search(r"\| first serverContent after the client's turn \| 30 \| [\d.]+ \| [\d.]+ \| \*\*(-?[\d.]+)\*\*",
                      live)
    assert added and abs(float(added.group(1))) < 50  # the proxy adds milliseconds, not a Live latency's worth
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|.*\| (\d+) → (\d+) → (\d+) \|[^|]*\| "
                      r"client_close: (\d+) \|$", live, re.M)
    assert [row[0] for row in rows] == ["20", "50"]
    for count, setup, answered, failed, dropped, idle_fds, open_fds, closed_fds, recorded in rows:
        assert setup == answered == recorded == count and failed == dropped == "0"
        assert int(open_fds) >= int(idle_fds) + 2 * int(count)  # the client's socket and Gemini's, each
        assert closed_fds == idle_fds  # every socket let go once the clients closed
