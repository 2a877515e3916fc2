"""The fast tier (-m "not e2e") starts no process: the guard in fast_tier.py fails a test that would."""
import os
import subprocess

import pytest

from tests import processes

pytestmark = pytest.mark.e2e


def test_a_test_not_marked_e2e_that_starts_a_process_fails_naming_the_marker():
    done = subprocess.run([processes.PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           os.path.join("tests", "guard_samples.py")],
                          cwd=processes.ROOT, capture_output=True, text=True, timeout=120,
                          env=processes.base_env(PYTHONPATH=processes.ROOT))
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "FAILED tests/guard_samples.py::test_starts_a_program_unmarked" in out
    assert "starts a process (['true']): mark it e2e" in out
    # Swallowed by the code under test, the refusal still fails the test, at its teardown.
    assert "ERROR tests/guard_samples.py::test_swallows_the_refusal_unmarked" in out
    assert "test_swallows_the_refusal_unmarked tried to start [['true']]: mark it e2e" in out
    assert "ERROR tests/guard_samples.py::test_uses_a_process_fixture_unmarked" in out
    assert "uses redis_server, which start real processes: mark it e2e" in out
    assert "redis-server" not in out  # refused before the fixture started it
    assert "PASSED tests/guard_samples.py::test_starts_a_program_marked_e2e" in out
    assert "PASSED tests/guard_samples.py::test_starts_nothing" in out
    assert "1 failed, 3 passed, 2 errors" in out, out
