"""What fit prints: a bar on a terminal, plain lines elsewhere (never carriage-return redraws
into a log file), one line per epoch with verbose=2; what `fastnn info` lists; model(x)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np

import fastnn
from fastnn.callbacks import EpochLog, ProgressBar, progress
from fastnn.layers import Dense


def small_model():
    model = fastnn.Sequential([Dense(4, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=0)
    model.compile("adam", "binary_crossentropy")
    return model


DATA = (np.random.default_rng(0).standard_normal((32, 2)), np.arange(32) % 2)


def test_verbose_2_prints_one_line_per_epoch(capsys):
    small_model().fit(*DATA, epochs=4, batch_size=8, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == [f"epoch {k}/4" for k in range(1, 5)]
    assert all(" - loss: " in line and " - accuracy: " in line and " ms" in line for line in lines)


def test_verbose_1_off_a_terminal_prints_lines_not_redraws(capsys):
    small_model().fit(*DATA, epochs=300, batch_size=32, verbose=1)  # stdout is captured: not a terminal
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert 2 <= len(lines) < 50 and lines[0].startswith("epoch 1/300") and lines[-1].startswith("epoch 300/300")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_is_for_terminals_and_verbose_0_prints_nothing():
    assert [type(c) for c in progress(1, Terminal())] == [ProgressBar]
    assert [type(c) for c in progress(1, io.StringIO())] == [EpochLog]
    assert [type(c) for c in progress(2, Terminal())] == [EpochLog]
    assert progress(0) == []


def test_the_cli_log_redirected_to_a_file_is_readable(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-m", "fastnn", "train", "moons", "--epochs", "200"], stdout=out, check=True)
    text = log.read_text()
    assert "\r" not in text and text.splitlines()[0].startswith("epoch 1/200") and "accuracy:" in text
    assert len(text.splitlines()) < 40


def test_info_lists_every_optional_part_with_why_not_or_its_version():
    out = subprocess.run([sys.executable, "-m", "fastnn", "info"], capture_output=True, text=True, check=True).stdout
    section = out.split("optional parts:\n", 1)[1]
    for part in ("cupy", "numba-cuda", "torch", "jax", "mpi4py", "mkl", "onednn", "scikit-learn", "onnx", "matplotlib",
                 "bfloat16"):
        line = next(line for line in section.splitlines() if line.strip().startswith(f"{part}:"))
        assert ": available" in line or ("unavailable: " in line and len(line) > len(part) + 20)


def test_calling_a_model_predicts():
    model = small_model()
    x = DATA[0]
    np.testing.assert_array_equal(fastnn.to_numpy(model(x)), fastnn.to_numpy(model.predict(x)))
