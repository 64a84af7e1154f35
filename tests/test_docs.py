"""Every Python code block of README.md and docs/ runs (sybil reads them), in one namespace per
file, in a scratch folder; blocks after a `<!-- skip: next "reason" -->` comment are skipped
with that reason (they need a GPU, MPI...). The guide lists every name fastnn accepts."""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

import fastnn

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def code_blocks(path: Path) -> list:
    return list(Sybil(parsers=[PythonCodeBlockParser(), SkipParser()]).parse(path).examples())


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_the_pages_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what a block writes lands here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with fastnn.use("numpy"):
        for example in code_blocks(path):
            try:
                example.evaluate()
            except unittest.SkipTest:
                continue


def test_the_pages_have_their_blocks():
    counts = {str(p.relative_to(ROOT)): len(code_blocks(p)) for p in PAGES}
    assert counts["README.md"] >= 2 and counts["docs/getting-started.md"] >= 2 and counts["docs/guide/training.md"] >= 5


def test_the_guide_names_every_loss_metric_optimizer_activation_and_initializer():
    from fastnn import activations, initializers, losses, metrics, optimizers, regularizers, schedules

    page = (ROOT / "docs" / "guide" / "losses-metrics-optimizers.md").read_text()
    names = [*losses.LOSSES, *losses._ALIASES, *metrics.METRICS, "accuracy", *optimizers.OPTIMIZERS,
             *activations.ACTIVATIONS, *activations._ALIASES, *initializers.INITIALIZERS, *initializers._ALIASES,
             *regularizers.REGULARIZERS, *schedules.SCHEDULES]
    missing = [name for name in names if f"`{name}`" not in page]
    assert not missing, f"docs/guide/losses-metrics-optimizers.md does not name {missing}"


def test_the_site_navigation_reaches_every_guide():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in ("guide/training.md", "guide/losses-metrics-optimizers.md", "guide/saving.md", "guide/backends.md",
                 "sklearn.md", "images.md", "deploy.md", "distributed.md", "gallery.md", "api/model.md"):
        assert page in nav and (ROOT / "docs" / page).exists(), page
