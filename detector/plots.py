"""Figures for the notebooks: feature distributions, timelines, distributions by population, scores,
two models compared, drift.

Every function draws on a fresh ``matplotlib.figure.Figure`` (the Agg canvas), never through pyplot, so
it runs headless and touches no global state; it returns the figure, which Jupyter shows inline
(``%matplotlib inline``) and ``fig.savefig(path)`` writes. The numbers come from ``detector.analysis``
and ``detector.drift``; nothing is computed here that a table there does not also give.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from detector.evaluate.figures import (_HORIZONTAL, ABUSIVE_COLOUR, BLOCK_COLOUR, NORMAL_COLOUR,
                                       THROTTLE_COLOUR)
from detector.features.catalog import FEATURE_NAMES, SPECS
from detector.records import Thresholds

NEW_COLOUR, OLD_COLOUR = "#2c7fb8", "#999999"


def _times(index) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(index, dtype=np.float64), unit="s", utc=True)


def _threshold_lines(ax, thresholds: Thresholds | None, vertical: bool = True, style: str = "--",
                     suffix: str = "") -> None:
    if thresholds is None:
        return
    for name, colour in (("throttle", THROTTLE_COLOUR), ("block", BLOCK_COLOUR)):
        line = ax.axvline if vertical else ax.axhline
        line(getattr(thresholds, name), color=colour, ls=style, lw=1, label=f"{name} threshold{suffix}")


def feature_histograms(raw: np.ndarray, names: Sequence[str] = FEATURE_NAMES, columns: int = 4,
                       bins: int = 40) -> Figure:
    """One small histogram per feature of some feature rows, on the scale the model sees
    (``log1p`` for heavy-tailed features); the title says how many rows could not measure it."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(names))
    rows = max(1, math.ceil(len(names) / columns))
    fig = Figure(figsize=(3.2 * columns, 2.1 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, i in zip(axes, range(len(names))):
        spec = SPECS.get(names[i])
        values = raw[~np.isnan(raw[:, i]), i]
        logged = spec is not None and spec.log
        shown = np.log1p(np.clip(values, 0.0, None)) if logged else values
        if len(shown):
            ax.hist(shown, bins=bins, color=NORMAL_COLOUR)
        missing = 1 - len(values) / max(len(raw), 1)
        ax.set_title(names[i] + (f"  ({missing:.0%} n/a)" if missing else ""), fontsize=8)
        ax.set_xlabel(("log1p " if logged else "") + (spec.unit.strip() if spec and spec.unit else "value"),
                      fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Feature distributions (one count per client per tick)", fontsize=10)
    return fig


def timeline(per_minute: pd.DataFrame, title: str, ylabel: str = "requests per minute",
             stacked: bool = False) -> Figure:
    """One line per column of a per-minute table (index: minute start, epoch seconds), on UTC time."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    times = _times(per_minute.index)
    if stacked and len(per_minute.columns):
        ax.stackplot(times, per_minute.to_numpy(dtype=float).T, labels=list(per_minute.columns), alpha=0.85)
    else:
        for column in per_minute.columns:
            ax.plot(times, per_minute[column].to_numpy(dtype=float), lw=1.2, label=str(column))
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    if len(per_minute.columns):
        ax.legend(fontsize=7, ncol=min(4, len(per_minute.columns)), loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def distributions(groups: Mapping[str, np.ndarray], title: str, xlabel: str, xscale: str = "linear") -> Figure:
    """One horizontal box per population (whiskers at the 5th and 95th percentiles), with its count.

    ``groups`` is ``analysis.by_population(...)``; ``xscale="symlog"`` suits gaps spanning milliseconds
    to minutes.
    """
    names = list(groups)
    fig = Figure(figsize=(8, 0.42 * max(len(names), 1) + 1.4), layout="constrained")
    ax = fig.subplots()
    if names:
        ax.boxplot([np.asarray(groups[n], dtype=float) for n in names], positions=range(len(names)), widths=0.6,
                   whis=(5, 95), showfliers=False, **_HORIZONTAL)
        ax.set_yticks(range(len(names)), [f"{n} ({len(groups[n])})" for n in names], fontsize=8)
        ax.invert_yaxis()
    if xscale == "symlog":  # linear below 0.1 s, where re-poll delays of ordinary clients sit
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlim(left=0)
    else:
        ax.set_xscale(xscale)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return fig


def score_histogram(client_scores: pd.Series, thresholds: Thresholds | None = None,
                    labels: pd.Series | None = None, bins: int = 50) -> Figure:
    """Histogram of per-client highest scores with the thresholds; split normal / abusive when a
    ``labels`` series (client -> "normal" / "abusive") is given."""
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    edges = np.linspace(min(client_scores.min(), 0.3) if len(client_scores) else 0.3, 1.0, bins + 1)
    if labels is None:
        ax.hist(client_scores.to_numpy(), bins=edges, color=NORMAL_COLOUR, label=f"clients ({len(client_scores)})")
    else:
        label_of = client_scores.index.map(labels).fillna("unlabelled")
        for name, colour in (("normal", NORMAL_COLOUR), ("abusive", ABUSIVE_COLOUR), ("unlabelled", OLD_COLOUR)):
            part = client_scores.to_numpy()[label_of == name]
            if len(part):
                ax.hist(part, bins=edges, color=colour, alpha=0.7, label=f"{name} ({len(part)})")
    _threshold_lines(ax, thresholds)
    ax.set_yscale("log")
    ax.set_xlabel("client's highest score (higher = more anomalous)")
    ax.set_ylabel("clients")
    ax.set_title("Per-client scores", fontsize=10, loc="left")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def score_comparison(new_scores: pd.Series, old_scores: pd.Series, new: Thresholds, old: Thresholds,
                     names: tuple[str, str] = ("new", "current"), labels: pd.Series | None = None) -> Figure:
    """Each client's highest score under both models (x: old, y: new) with both sets of thresholds."""
    new_scores, old_scores = new_scores.align(old_scores, join="inner")
    fig = Figure(figsize=(5.5, 5.2), layout="constrained")
    ax = fig.subplots()
    colours = (np.where(new_scores.index.map(labels).fillna("normal") == "abusive", ABUSIVE_COLOUR, NORMAL_COLOUR)
               if labels is not None else NORMAL_COLOUR)
    ax.scatter(old_scores.to_numpy(), new_scores.to_numpy(), s=8, alpha=0.6, c=colours, lw=0)
    _threshold_lines(ax, old, vertical=True, style=":", suffix=f" ({names[1]})")
    _threshold_lines(ax, new, vertical=False, style="--", suffix=f" ({names[0]})")
    lo = float(min(new_scores.min(), old_scores.min(), 0.3)) if len(new_scores) else 0.3
    ax.plot([lo, 1], [lo, 1], color="black", lw=0.5)
    ax.set_xlabel(f"{names[1]} model: client's highest score")
    ax.set_ylabel(f"{names[0]} model: client's highest score")
    ax.set_title(f"Same clients, two models ({len(new_scores)} clients)", fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def client_scores_over_time(at: np.ndarray, scores: np.ndarray, clients: np.ndarray, chosen: Sequence[str],
                            thresholds: Thresholds | None = None) -> Figure:
    """The score of each ``chosen`` client at every tick it was scored, with the thresholds."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    clients = np.asarray(clients)
    for client in chosen:
        mask = clients == client
        ax.plot(_times(np.asarray(at)[mask]), np.asarray(scores)[mask], ".-", ms=3, lw=0.8, label=str(client))
    _threshold_lines(ax, thresholds, vertical=False)
    ax.set_ylabel("score")
    ax.set_xlabel("time (UTC)")
    ax.set_title("Scores of the most anomalous clients over time", fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return fig


def drift(table: pd.DataFrame) -> Figure:
    """Two panels per feature of ``drift.drift_table``: the PSI (lines at 0.1 and 0.25) and the
    median's shift in training 5–95th percentile spans."""
    from detector.drift import PSI_MAJOR, PSI_MODERATE

    names = list(table.index)
    fig = Figure(figsize=(10, 0.3 * max(len(names), 1) + 1.6), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(names))
    psi = table["psi"].to_numpy(dtype=float) if len(names) else np.empty(0)
    colours = np.where(psi > PSI_MAJOR, ABUSIVE_COLOUR, np.where(psi > PSI_MODERATE, THROTTLE_COLOUR, NORMAL_COLOUR))
    left.barh(y, np.nan_to_num(psi), color=colours)
    for x in (PSI_MODERATE, PSI_MAJOR):
        left.axvline(x, color="grey", ls="--", lw=0.8)
    left.set_yticks(y, names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("PSI against the training day")
    shift = table["median shift"].to_numpy(dtype=float) if len(names) else np.empty(0)
    right.barh(y, np.nan_to_num(shift), color=NORMAL_COLOUR)
    right.axvline(0, color="black", lw=0.6)
    right.set_xlabel("median shift (training 5–95th percentile spans)")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("What changed since the training day, feature by feature", fontsize=10)
    return fig
