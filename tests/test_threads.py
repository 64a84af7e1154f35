"""Each data-parallel rank's share of its host's cores (fastnn.threads); the launches themselves
are in tests/test_distributed.py."""

from __future__ import annotations

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
