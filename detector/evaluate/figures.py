"""The report's PNG figures: score distributions by class, precision-recall, and a verdict timeline.

Figures are drawn on ``matplotlib.figure.Figure`` objects (the Agg canvas), never through pyplot, so
no global backend or figure state is touched. Each function returns the path written, or ``None``
when the data cannot show anything (no scores of both labels, no client worth a timeline row).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sklearn.metrics import precision_recall_curve

from detector.evaluate.labels import class_order
from detector.evaluate.verdicts import FLAGS, spans

NORMAL_COLOUR, ABUSIVE_COLOUR = "#3b75af", "#c0392b"
THROTTLE_COLOUR, BLOCK_COLOUR = "#f39c12", "#c0392b"
ATTACK_COLOUR, OUTAGE_COLOUR = "#bdbdbd", "#aec7e8"
TIMELINE_ATTACKERS, TIMELINE_FALSE_POSITIVES = 40, 20
# ``vert=False`` is deprecated from matplotlib 3.10, which has ``orientation``; 3.8 and 3.9 only know vert
_HORIZONTAL = ({"orientation": "horizontal"} if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
               else {"vert": False})


def score_distributions(result, path: Path) -> Path | None:
    """One row per class: a box of per-client scores with every client as a dot; thresholds as lines."""
    table = result.clients
    if table.empty:
        return None
    groups = []  # (row label, scores, abusive)
    for abusive in (False, True):
        part = table[table["abusive"] == abusive]
        for cls in class_order(part["class"].unique()):
            scores = part.loc[part["class"] == cls, "score"].to_numpy(dtype=float)
            groups.append((f"{cls} ({len(scores)})", scores, abusive))
    fig = Figure(figsize=(8, 0.45 * len(groups) + 1.4))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for y, (_name, scores, abusive) in enumerate(groups):
        colour = ABUSIVE_COLOUR if abusive else NORMAL_COLOUR
        ax.boxplot(scores, positions=[y], widths=0.6, showfliers=False,
                   medianprops={"color": colour}, boxprops={"color": colour}, whiskerprops={"color": colour},
                   capprops={"color": colour}, **_HORIZONTAL)
        ax.scatter(scores, y + rng.uniform(-0.18, 0.18, len(scores)), s=8, alpha=0.5, color=colour, lw=0)
    thresholds = result.thresholds or {}
    for name, colour in (("throttle", THROTTLE_COLOUR), ("block", BLOCK_COLOUR)):
        if thresholds.get(name) is not None:
            ax.axvline(thresholds[name], color=colour, ls="--", lw=1, label=f"{name} threshold")
    if thresholds:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.set_yticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("per-client score (higher = more anomalous); blue: normal classes, red: attack classes")
    ax.set_title("Score by class (one dot per client)", fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def precision_recall(result, path: Path) -> Path | None:
    """The precision-recall curve of per-client scores, the model's verdicts and the rate limit marked."""
    mx = result.metrics
    if mx["ranking"]["average_precision"] is None:
        return None
    table = result.clients
    precision, recall, _ = precision_recall_curve(table["abusive"].to_numpy(), table["score"].to_numpy())
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.step(recall, precision, where="post", color=NORMAL_COLOUR,
            label=f"per-client score (AP {mx['ranking']['average_precision']:.3f})")
    model = mx["model"]
    if model["precision"] is not None and model["recall"] is not None:
        ax.plot(model["recall"], model["precision"], "o", color=ABUSIVE_COLOUR, ms=8, label="model verdicts")
    if result.baseline is not None:
        curve = result.baseline.curve.dropna(subset=["precision", "recall"])
        ax.plot(curve["recall"], curve["precision"], ".--", color="grey", lw=0.8, ms=3,
                label="fixed rate limits")
        rl = mx["rate_limit"]
        if rl["precision"] is not None:
            ax.plot(rl["recall"], rl["precision"], "s", color="black", ms=7,
                    label=f"best rate limit (> {rl['limit']} / {rl['window_s']:g} s)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("recall (abusive clients flagged)")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall over clients", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def timeline_rows(result) -> pd.DataFrame:
    """Rows of the timeline: attackers (a few per class when there are many), then false positives."""
    table = result.clients
    attackers = table[table["abusive"]]
    order = {c: i for i, c in enumerate(class_order(attackers["class"].unique()))}
    attackers = attackers.assign(_order=attackers["class"].map(order)).sort_values(["_order", "attack_start"])
    if len(attackers) > TIMELINE_ATTACKERS:
        per_class = max(1, TIMELINE_ATTACKERS // max(1, len(order)))
        attackers = attackers.groupby("class", sort=False).head(per_class)
    fps = table[~table["abusive"] & table["flagged"]].sort_values("first_flag").head(TIMELINE_FALSE_POSITIVES)
    return pd.concat([attackers.drop(columns="_order"), fps])


def timeline(result, path: Path) -> Path | None:
    """Attack windows as grey bars, throttle/block spans coloured over them, the outage shaded.

    The axis covers the attacks, the throttle/block ``at`` times and the outage; verdicts that
    outlast them run to the right edge.
    """
    rows = timeline_rows(result)
    if rows.empty:
        return None
    shown = result.verdicts[result.verdicts["client"].isin(rows.index)]
    times = [rows["attack_start"], rows["attack_end"], shown.loc[shown["verdict"].isin(FLAGS), "at"]]
    if result.outage:
        times.append(pd.Series(result.outage))
    stamps = pd.concat([pd.Series(t, dtype=float) for t in times]).dropna()
    stamps = stamps[np.isfinite(stamps)]
    if stamps.empty:
        return None
    t0, t1 = float(stamps.min()), float(stamps.max())
    t1 = t0 + max(t1 - t0, 60.0) * 1.05
    bars = spans(shown, t1)
    bars["stop"] = bars["stop"].clip(upper=t1)

    def minutes(t):
        return (np.asarray(t, dtype=float) - t0) / 60.0

    fig = Figure(figsize=(10, min(0.24 * len(rows) + 1.6, 14)))
    ax = fig.subplots()
    if result.outage:
        a, b = minutes(result.outage)
        ax.axvspan(a, b, color=OUTAGE_COLOUR, alpha=0.5, lw=0)
    y_of = {client: y for y, client in enumerate(rows.index)}
    has_attack = rows.dropna(subset=["attack_start"])
    ax.barh([y_of[c] for c in has_attack.index], minutes(has_attack["attack_end"].fillna(t1)) - minutes(
        has_attack["attack_start"]), left=minutes(has_attack["attack_start"]), height=0.8, color=ATTACK_COLOUR)
    for verdict, colour in (("throttle", THROTTLE_COLOUR), ("block", BLOCK_COLOUR)):
        part = bars[bars["verdict"] == verdict]
        if len(part):
            ax.barh([y_of[c] for c in part["client"]], minutes(part["stop"]) - minutes(part["start"]),
                    left=minutes(part["start"]), height=0.45, color=colour)
    labels = [f"{'' if abusive else 'FP  '}{client} · {cls}"
              for client, abusive, cls in zip(rows.index, rows["abusive"], rows["class"])]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, minutes(t1))
    start = datetime.fromtimestamp(t0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    ax.set_xlabel(f"minutes since {start}")
    n_attackers = int(result.clients["abusive"].sum())
    n_fp = int((~result.clients["abusive"] & result.clients["flagged"]).sum())
    shown_attackers = int(rows["abusive"].sum())
    ax.set_title(f"Verdicts against attack windows: {shown_attackers} of {n_attackers} attackers, "
                 f"{len(rows) - shown_attackers} of {n_fp} false positives", fontsize=10, loc="left", pad=18)
    handles = [Patch(color=ATTACK_COLOUR, label="attack window"), Patch(color=THROTTLE_COLOUR, label="throttle"),
               Patch(color=BLOCK_COLOUR, label="block")]
    if result.outage:
        handles.append(Patch(color=OUTAGE_COLOUR, alpha=0.5, label="outage"))
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles), fontsize=8,
              frameon=False, borderaxespad=0.1)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def draw_all(result, out_dir: Path) -> dict[str, Path]:
    """Every figure that has something to show, by name."""
    out = {}
    for name, draw in (("scores", score_distributions), ("precision_recall", precision_recall),
                       ("timeline", timeline)):
        written = draw(result, out_dir / f"{name}.png")
        if written is not None:
            out[name] = written
    return out

