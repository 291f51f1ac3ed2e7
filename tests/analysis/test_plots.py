"""detector.plots: each figure draws headless (no pyplot) with what it was given, and saves as PNG."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from detector import drift, plots
from detector.records import Thresholds

T0 = 1_764_403_200.0
THR = Thresholds(throttle=0.6, block=0.7)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")
    return buf.getvalue()


def test_feature_histograms_one_panel_per_feature():
    raw = np.random.default_rng(0).exponential(size=(50, 5))
    raw[:10, 1] = np.nan
    fig = plots.feature_histograms(raw, ("rpm_10s", "hold_60s", "a", "b", "c"), columns=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 8 and len(visible) == 5
    assert visible[1].get_title() == "hold_60s  (20% n/a)" and visible[0].get_xlabel() == "log1p value"
    _png(fig)


def test_timeline_draws_one_line_per_column():
    table = pd.DataFrame({"browser": [3, 4, 5], "scanner": [0, 9, 0]}, index=[T0, T0 + 60, T0 + 120])
    ax = plots.timeline(table, "t").axes[0]
    assert [line.get_label() for line in ax.lines] == ["browser", "scanner"]
    assert ax.lines[1].get_ydata().tolist() == [0, 9, 0]
    assert len(plots.timeline(table, "t", stacked=True).axes[0].collections) == 2
    _png(plots.timeline(table.iloc[:0], "empty"))


def test_distributions_label_each_population_with_its_count():
    fig = plots.distributions({"browser": np.array([1.0, 2.0, 3.0]), "scanner": np.array([0.01])}, "t", "s",
                              xscale="symlog")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["browser (3)", "scanner (1)"]
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0
    _png(plots.distributions({}, "nothing", "s"))


def test_score_histogram_splits_by_label_and_marks_thresholds():
    scores = pd.Series({"a": 0.5, "b": 0.55, "c": 0.9, "d": 0.45})
    ax = plots.score_histogram(scores, THR, labels=pd.Series({"a": "normal", "b": "normal", "c": "abusive"})).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["normal (2)", "abusive (1)", "unlabelled (1)", "throttle threshold", "block threshold"]
    assert [line.get_xdata()[0] for line in ax.lines] == [0.6, 0.7]


def test_score_comparison_one_dot_per_shared_client():
    new, old = pd.Series({"a": 0.5, "b": 0.8, "c": 0.6}), pd.Series({"a": 0.55, "b": 0.7, "x": 0.9})
    ax = plots.score_comparison(new, old, THR, Thresholds(0.65, 0.75), ("n", "o")).axes[0]
    assert len(ax.collections[0].get_offsets()) == 2 and "2 clients" in ax.get_title(loc="left")
    assert "throttle threshold (o)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_client_scores_over_time_one_line_per_client():
    at = np.array([T0, T0 + 2, T0, T0 + 2])
    fig = plots.client_scores_over_time(at, np.array([0.5, 0.9, 0.4, 0.45]), np.array(["a", "a", "b", "b"]),
                                        ["a", "b"], THR)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["a", "b", "throttle threshold", "block threshold"]
    _png(fig)


def test_drift_bars_per_feature():
    reference = drift.profile(np.arange(1.0, 101.0)[:, None].repeat(2, axis=1), ("x", "y"))
    table = drift.drift_table(reference, np.arange(1.0, 101.0)[:, None] * np.array([[1.0, 3.0]]), ("x", "y"))
    left, right = plots.drift(table).axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["y", "x"]  # most drifted first
    assert len(left.patches) == 2 and len(right.patches) == 2
    assert left.patches[0].get_width() == table["psi"].iloc[0]
