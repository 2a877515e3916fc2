"""The fast tier's rules, as a pytest plugin (tests/conftest.py loads it): temporary files in memory where
there is room, and no real process in a test not marked e2e, so that -m "not e2e" starts none."""
import os
import subprocess
import tempfile

import pytest

MEMORY_DISK = "/dev/shm"
MEMORY_DISK_FREE = 2 << 30  # bytes: a container's 64 MiB /dev/shm would fill up


def pytest_configure(config):
    """Temporary files (each test's SQLite database) in memory where the machine has room: on a disk,
    SQLite's fsync at every commit made most of the fast tier's time. TMPDIR or --basetemp still rule."""
    if os.environ.get("TMPDIR") or config.option.basetemp or not os.access(MEMORY_DISK, os.W_OK):
        return
    disk = os.statvfs(MEMORY_DISK)
    if disk.f_bavail * disk.f_frsize >= MEMORY_DISK_FREE:
        tempfile.tempdir = MEMORY_DISK


# Fixtures that start a real process or hold one: a test that uses any of them is e2e.
PROCESS_FIXTURES = frozenset({"emulator_process", "gunicorn", "postgres", "redis_server"})


def pytest_runtest_setup(item):
    """The fast tier (-m "not e2e") must start no process: a test using a process fixture says e2e."""
    if item.get_closest_marker("e2e") is None:
        used = sorted(PROCESS_FIXTURES.intersection(item.fixturenames))
        if used:
            pytest.fail(f"{item.nodeid} uses {', '.join(used)}, which start real processes: mark it e2e",
                        pytrace=False)


@pytest.fixture(autouse=True)
def processes_only_in_e2e(request, monkeypatch):
    """A test not marked e2e that starts a program (Gunicorn, a CLI, Chromium: anything through
    subprocess, tests/processes.py included) fails, even if the code under test swallowed the error."""
    if request.node.get_closest_marker("e2e") is not None:
        yield
        return
    attempts = []

    def refuse(popen, args, *rest, **kwargs):
        attempts.append(args)
        pytest.fail(f"{request.node.nodeid} starts a process ({args!r}): mark it e2e", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    yield
    if attempts and not getattr(request.node, "failed_already", False):  # the code under test swallowed it
        pytest.fail(f"{request.node.nodeid} tried to start {attempts!r}: mark it e2e", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.failed_already = True  # its set-up or call: the refusal is reported, not again at teardown
    return report
