"""The `fastnn` command: user errors print one line and exit with status 2, before training."""

from __future__ import annotations

import subprocess
import sys

import pytest


def fastnn_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (["--backend", "nonsense"], "argument --backend: invalid choice: 'nonsense'"),
    (["--epochs", "-1"], "argument --epochs: must be at least 0, got -1"),
    (["--epochs", "many"], "argument --epochs: expected a whole number, got 'many'"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--save", "/missing/m.npz"], "cannot save to /missing/m.npz: the folder /missing does not exist"),
    (["--plot", "/missing/x.png"], "cannot save to /missing/x.png: the folder /missing does not exist"),
    (["--plot", "x.txt"], "--plot x.txt: cannot write .txt; use one of .png, .pdf, .svg"),
])
def test_user_errors_are_one_line_with_status_2(tmp_path, args, message):
    done = fastnn_cli("train", "xor", "--verbose", "0", *args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "xor: trained" not in done.stdout  # refused before training


def test_epochs_0_is_respected(tmp_path):
    from fastnn import examples

    assert examples.xor(epochs=0)["history"].epoch == []  # not the example's 300
    done = fastnn_cli("train", "xor", "--epochs", "0", "--verbose", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
