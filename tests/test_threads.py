"""Each data-parallel rank's share of its host's cores (fastnn.threads); the launches themselves
are in tests/test_distributed.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastnn import threads

FOUR = frozenset(range(4))


@pytest.mark.parametrize(("own", "local", "expected"), [
    (FOUR, [FOUR, FOUR], 2),  # unbound ranks split the cores
    (FOUR, [FOUR] * 3, 1),  # and keep one thread each when they do not divide evenly
    (FOUR, [FOUR] * 8, 1),  # more ranks than cores: one each, never none
    (frozenset({0, 1}), [frozenset({0, 1}), frozenset({2, 3})], 2),  # bound by the launcher: its own cores
    (FOUR, [FOUR], 4),
])
def test_threads_per_rank(own, local, expected):
    assert threads.threads_per_rank(own, local) == expected


def test_one_rank_on_its_host_or_a_thread_variable_leaves_the_libraries_alone(monkeypatch):
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert threads.share_host([FOUR]) is None
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert threads.share_host([FOUR, FOUR]) is None
    assert threads.usable_cores() == len(threads.cores())


ENV_AT_NUMPY_LOAD = r'''
import os, sys
seen = []

class Watch:  # records OPENBLAS_THREAD_TIMEOUT at the moment numpy (and with it OpenBLAS) loads
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not seen:
            seen.append(os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
        return None

sys.meta_path.insert(0, Watch())
import fastnn
print(seen[0])
'''


@pytest.mark.parametrize(("user_value", "expected"), [(None, "20"), ("26", "26")])
def test_openblas_idle_spin_is_short_before_numpy_loads_unless_the_user_set_it(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_value
    out = subprocess.run([sys.executable, "-c", ENV_AT_NUMPY_LOAD], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split()[-1] == expected
