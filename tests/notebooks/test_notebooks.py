"""Both notebooks run top to bottom, headless, on a small simulated log; the committed files are clean.

The logs, a "current" model (trained here like ``detector train`` does, so without a feature profile)
and a models folder are made once for the module; the notebooks get them through an injected
parameters cell (``runner.inject``). Small sizes and few trees keep both runs within a minute or so.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from detector.model import AnomalyModel, load_artifact, save_artifact, set_current
from detector.pipeline import training_rows
from detector.sim import simulate

from . import runner

pytestmark = pytest.mark.slow
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    """A training day, a labelled test day and a models folder whose current model is ``old.1``."""
    base = tmp_path_factory.mktemp("notebooks")
    simulate(base / "train", minutes=5, seed=11, clients=120, attackers=14, attacks=False)
    simulate(base / "test", minutes=5, seed=12, clients=120, attackers=14)
    rows = training_rows([base / "train" / "access.log"])
    old = AnomalyModel(n_estimators=15, max_samples=256, random_state=1).fit(rows.raw, groups=rows.clients)
    save_artifact(old, base / "models", "old.1")
    set_current(base / "models", "old.1")
    return base


def test_retrain_trains_evaluates_compares_saves_and_hands_over(day):
    params = dict(LOGS=[str(day / "train" / "access.log")], EVAL_LOGS=[str(day / "test" / "access.log")],
                  EVAL_LABELS=str(day / "test" / "labels.csv"), TREES=15, MAX_SAMPLES=256, MODEL_NAME="nb.1",
                  MODELS_DIR=str(day / "models"), TOP=5, PROMOTE=True, SERVICE_URL=UNREACHABLE, ADMIN_KEY="key",
                  DEMO_DATA=False)
    nb = runner.run("retrain.ipynb", params, cwd=day)
    text = runner.outputs_text(nb)

    model, card = load_artifact(day / "models" / "nb.1")  # what `detector serve --model` does first
    assert card["version"] == "nb.1" and card["training"]["logs"] == params["LOGS"]
    assert set(card["training"]["feature_profile"]["features"]) == set(card["features"])
    assert card["metrics"]["evaluated_on"]["labels"] == params["EVAL_LABELS"]
    assert 0 <= card["metrics"]["recall"] <= 1
    assert (day / "models" / "current").read_text().strip() == "nb.1"
    assert "old.1" in text  # the comparison ran against the current model
    assert "flagged only by nb.1" in text and "cannot reach http://127.0.0.1:9" in text
    assert "detector models promote nb.1" in text and "--set-current" in text
    assert runner.images(nb) >= 5


def test_explore_with_labels_scores_and_shows_drift_from_the_model(day):
    set_current(day / "models", "old.1")
    params = dict(LOGS=[str(day / "test" / "access.log")], LABELS=str(day / "test" / "labels.csv"),
                  MODEL=str(day / "models" / "current"), TOP=5, DEMO_DATA=False)
    nb = runner.run("explore.ipynb", params, cwd=day)
    text = runner.outputs_text(nb)
    assert "reconnect_loop" in text  # populations from the labels
    assert "model old.1" in text and "coarse" in text  # drift against the 5/50/95th percentiles
    assert runner.images(nb) >= 7


def test_explore_without_labels_on_a_combined_log_in_a_time_range(day):
    meta = json.loads((day / "test" / "meta.json").read_text())
    params = dict(LOGS=[str(day / "test" / "access_combined.log")], FORMAT="nginx-combined", LABELS=None,
                  START=meta["start"] + 60, END=meta["start"] + 240, MODEL=str(day / "models" / "old.1"),
                  REFERENCE_LOGS=[str(day / "train" / "access.log")], TOP=3, DEMO_DATA=False)
    nb = runner.run("explore.ipynb", params, cwd=day)
    text = runner.outputs_text(nb)
    assert "one user agent" in text  # populations from traits
    assert "access.log" in text and "coarse" not in text  # drift against the training log itself


@pytest.mark.parametrize("path", sorted(runner.NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_are_clean_and_explained(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    for before, cell in zip(nb.cells, nb.cells[1:]):  # every code cell is introduced in words
        assert cell.cell_type != "code" or before.cell_type == "markdown", cell.source[:80]
    for cell in code:  # the library computes: no functions or classes defined in a notebook
        assert not any(line.lstrip().startswith(("def ", "class ", "lambda")) for line in cell.source.splitlines())
        assert "lambda" not in cell.source


def test_both_notebooks_are_there():
    assert {p.name for p in runner.NOTEBOOKS.glob("*.ipynb")} >= {"retrain.ipynb", "explore.ipynb"}
