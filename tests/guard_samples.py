"""Samples for test_fast_tier.py's guard (not collected by default: the name is not test_*): tests that
break the fast tier's rule, and one that keeps it."""
import subprocess

import pytest


def test_starts_a_program_unmarked():
    subprocess.run(["true"], check=True)


def test_swallows_the_refusal_unmarked():
    try:
        subprocess.run(["true"], check=True)
    except BaseException:
        pass


def test_uses_a_process_fixture_unmarked(redis_server):
    pass


@pytest.mark.e2e
def test_starts_a_program_marked_e2e():
    subprocess.run(["true"], check=True)


def test_starts_nothing():
    assert True
