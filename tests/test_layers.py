"""The package layering declared in .importlinter holds: an import arrow points down only, and the
features do not use one another."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e  # it runs the lint-imports CLI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_import_graph_keeps_the_declared_layers():
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout

