"""The scripts in examples/ run as they are, each asserting its own outcome."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_the_example_script_runs(script, tmp_path):
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip()


def test_there_are_the_scripts():
    assert {s.name for s in SCRIPTS} >= {"digits_early_stopping.py", "regression.py", "custom_callback.py",
                                         "tabular.py", "deep_residual.py"}
