"""Traffic and score analysis for people: the numbers behind ``notebooks/explore.ipynb`` and ``retrain.ipynb``.

Pure functions over what the pipeline already produces (event frames from ``detector.ingest``, feature
rows from ``detector.pipeline.training_rows``, scores from ``AnomalyModel``): what a log holds, requests
per minute by population, hold-time and reconnect-gap distributions, the most anomalous clients with
their reasons, and two models side by side. Times are the log's own (epoch seconds), passed in; nothing
here reads the clock. Drift lives in ``detector.drift``, figures in ``detector.plots``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from detector.features.catalog import FEATURE_NAMES, SPECS
from detector.features.stream import FeatureStream
from detector.ingest.formats import EVENT_COLUMNS, ClientKey, JsonlMapping, ended
from detector.ingest.sources import read_batches
from detector.pipeline import TrainingRows, training_rows
from detector.records import ACTIONS, IngestStats, Thresholds

#: distinct user agents per client that separate the populations ``trait_populations`` names
UA_BINS = ((1, "one user agent"), (2, "2-9 user agents"), (10, "10+ user agents"))
UNKNOWN = "unlabelled"


# -- time ---------------------------------------------------------------------------------------------
def to_epoch(value) -> float | None:
    """Epoch seconds from ``None``, a number, an ISO 8601 string or a datetime (naive means UTC).

    >>> to_epoch(None), to_epoch(1764403200), to_epoch("2025-11-29T08:00:00Z"), to_epoch("2025-11-29 08:00")
    (None, 1764403200.0, 1764403200.0, 1764403200.0)
    """
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


def utc(t: float | None) -> str:
    """Epoch seconds as a UTC time a person reads.

    >>> utc(1764403200.5), utc(None)
    ('2025-11-29 08:00:00 UTC', '')
    """
    if t is None or not np.isfinite(t):
        return ""
    return dt.datetime.fromtimestamp(float(t), tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def in_range(times: np.ndarray, start: float | None = None, end: float | None = None) -> np.ndarray:
    """Mask of ``times`` in ``[start, end)``; a missing bound is open.

    >>> in_range(np.array([1.0, 2.0, 3.0]), 2.0, 3.0).tolist()
    [False, True, False]
    """
    times = np.asarray(times, dtype=np.float64)
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    return keep


def quiet(done: int, total: int) -> None:
    """A progress callback that says nothing (for ``read_batches`` and ``evaluate_log`` in a notebook)."""


# -- reading --------------------------------------------------------------------------------------------
def read_events(paths: Iterable[str | Path], fmt: str = "auto", *, start: float | None = None,
                end: float | None = None, mapping: JsonlMapping | None = None, key: ClientKey | None = None,
                progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, IngestStats]:
    """Every parsed event of the logs whose ``end`` lies in ``[start, end)``, in one frame, and the counts.
    Start records (a gateway's line at a request's start) are left out: each request is its ended row.

    Uses the service's parsers (``read_batches``); the whole range is held in memory, so give a time
    range for logs of many millions of lines.
    """
    frames, stats = [], IngestStats()
    for batch in read_batches(paths, fmt, mapping=mapping, key=key, progress=progress):
        stats = stats + batch.stats
        events = ended(batch.events)
        frames.append(events[in_range(events["end"].to_numpy(), start, end)])
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS}), stats
    return pd.concat(frames, ignore_index=True), stats


def rows_for(paths: Sequence[str | Path], fmt: str = "auto", settings=None,
             progress: Callable[[int, int], None] | None = None) -> TrainingRows:
    """``training_rows`` as the service computes them: with the settings' client key, ``jsonl``
    mapping, tick and lateness (``detector.config.Settings``; ``None``: the defaults)."""
    if settings is None:
        return training_rows(paths, fmt, progress=progress)
    return training_rows(paths, fmt, stream=lambda: FeatureStream.configured(settings.features),
                         mapping=settings.ingest.mapping(), key=settings.ingest.client_key(), progress=progress)


def select_rows(rows: TrainingRows, start: float | None = None, end: float | None = None) -> TrainingRows:
    """The feature rows whose tick ``at`` lies in ``[start, end)`` (the ingest counts are kept whole)."""
    keep = in_range(rows.at, start, end)
    return rows.take(keep)


# -- what a log holds -------------------------------------------------------------------------------------
def overview(rows: TrainingRows) -> pd.Series:
    """Lines read, parsed and rejected, feature rows, clients and the time span of some feature rows."""
    st = rows.stats
    span = (float(rows.at.min()), float(rows.at.max())) if len(rows.at) else (None, None)
    return pd.Series({"lines read": st.read, "lines parsed": st.parsed, "lines rejected": st.rejected,
                      "lines skipped": st.passed, "feature rows (client x tick)": len(rows.raw), "clients": len(np.unique(rows.clients)),
                      "first tick": utc(span[0]), "last tick": utc(span[1])}, name="value", dtype=object)


def event_overview(events: pd.DataFrame, stats: IngestStats) -> pd.Series:
    """Lines read, parsed and rejected, the requests kept (in the time range), clients, first and last."""
    ends = events["end"].to_numpy(dtype=np.float64) if len(events) else np.empty(0)
    return pd.Series({"lines read": stats.read, "lines parsed": stats.parsed, "lines rejected": stats.rejected,
                      "lines skipped": stats.passed, "requests in range": len(events), "clients": int(events["client"].nunique()),
                      "first request ends": utc(ends.min()) if len(ends) else "",
                      "last request ends": utc(ends.max()) if len(ends) else ""}, name="value", dtype=object)


def malformed_table(stats: IngestStats) -> pd.DataFrame:
    """Rejected lines by reason (most first), with their share of the lines read."""
    counts = pd.Series(stats.malformed, dtype=np.int64).sort_values(ascending=False, kind="stable")
    return pd.DataFrame({"lines": counts, "share of lines read": counts / max(stats.read, 1)}).rename_axis("reason")


def feature_table(raw: np.ndarray, names: Sequence[str] = FEATURE_NAMES) -> pd.DataFrame:
    """Per feature: what it measures, the share of rows where it was measurable, and its 5/50/95th
    percentiles and maximum (raw units, over the measurable rows)."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(names))
    measured = ~np.isnan(raw)
    out = []
    for i, name in enumerate(names):
        values = raw[measured[:, i], i]
        spec = SPECS.get(name)
        q = np.quantile(values, [0.05, 0.5, 0.95]) if len(values) else [np.nan] * 3
        out.append({"feature": name, "measures": (spec.label + (f" ({spec.unit.strip()})" if spec.unit else ""))
                    if spec else "", "measured": float(measured[:, i].mean()) if len(raw) else np.nan,
                    "p5": q[0], "p50": q[1], "p95": q[2], "max": values.max() if len(values) else np.nan})
    return pd.DataFrame(out).set_index("feature")


# -- populations ----------------------------------------------------------------------------------------------
def trait_populations(events: pd.DataFrame) -> pd.Series:
    """Each client's population from a simple trait when there are no labels: its distinct user agents
    (one program or browser, a handful, or an office of many behind one address)."""
    agents = events.groupby("client", sort=True)["ua"].nunique()
    names = np.full(len(agents), UA_BINS[0][1], dtype=object)
    for lowest, name in UA_BINS:
        names[agents.to_numpy() >= lowest] = name
    return pd.Series(names, index=agents.index, name="population")


def populations(events: pd.DataFrame, labels: pd.DataFrame | None = None, column: str = "class") -> pd.Series:
    """Each client of ``events`` -> a population: the labels' ``column`` (clients missing from the labels
    are ``unlabelled``), or without labels ``trait_populations``."""
    if labels is None:
        return trait_populations(events)
    clients = pd.Index(pd.unique(events["client"]), name="client")
    return labels[column].astype(str).reindex(clients).fillna(UNKNOWN).rename("population")


def population_order(groups: pd.Series) -> list[str]:
    """Populations by number of clients, largest first (ties by name)."""
    counts = groups.value_counts()
    return sorted(counts.index, key=lambda g: (-counts[g], str(g)))


# -- timelines ---------------------------------------------------------------------------------------------------
def per_bucket(times: np.ndarray, labels: np.ndarray | str, bucket: float = 60.0) -> pd.DataFrame:
    """Counts per time bucket (index: bucket start, epoch seconds) and label (columns); empty buckets
    between the first and the last are rows of zeros."""
    times = np.asarray(times, dtype=np.float64)
    starts = np.floor(times / bucket) * bucket
    labels = np.full(len(times), labels, dtype=object) if isinstance(labels, str) else np.asarray(labels, dtype=object)
    table = pd.crosstab(starts, labels).rename_axis(index="minute", columns=None)
    if table.empty:
        return table
    full = np.arange(table.index.min(), table.index.max() + bucket / 2, bucket)
    return table.reindex(full, fill_value=0).rename_axis("minute")


def requests_per_minute(events: pd.DataFrame, groups: pd.Series | None = None, bucket: float = 60.0) -> pd.DataFrame:
    """Requests per minute (by end time), one column per population (clients outside ``groups`` are
    ``unlabelled``), or a single ``requests`` column without groups."""
    if groups is None:
        return per_bucket(events["end"].to_numpy(), "requests", bucket)
    labels = events["client"].map(groups).fillna(UNKNOWN).to_numpy()
    table = per_bucket(events["end"].to_numpy(), labels, bucket)
    return table[[g for g in population_order(groups) if g in table.columns]
                 + [c for c in table.columns if c not in set(groups)]]


STATUS_CLASSES = ("2xx/3xx", "429 throttled", "499 aborted", "other 4xx", "5xx")


def status_class(status: np.ndarray) -> np.ndarray:
    """Each status as one of ``STATUS_CLASSES``.

    >>> status_class(np.array([200, 304, 429, 499, 404, 503])).tolist()
    ['2xx/3xx', '2xx/3xx', '429 throttled', '499 aborted', 'other 4xx', '5xx']
    """
    s = np.asarray(status)
    return np.select([s < 400, s == 429, s == 499, s < 500], STATUS_CLASSES[:4], STATUS_CLASSES[4]).astype(object)


def status_per_minute(events: pd.DataFrame, bucket: float = 60.0) -> pd.DataFrame:
    """Answers per minute by status class (an outage shows as a wall of 5xx, throttling as 429s)."""
    table = per_bucket(events["end"].to_numpy(), status_class(events["status"].to_numpy()), bucket)
    return table[[c for c in STATUS_CLASSES if c in table.columns]]


# -- distributions --------------------------------------------------------------------------------------------------
def hold_times(events: pd.DataFrame) -> pd.Series:
    """Seconds each request was held open (index: client); formats without durations give none."""
    held = events.set_index("client")["duration"].astype(float)
    return held[held.notna()].rename("hold_s")


def reconnect_gaps(events: pd.DataFrame) -> pd.Series:
    """Seconds from each response to the next request of the same client and user agent, clipped at 0
    (index: client). Following each user agent apart keeps an office's many browsers, interleaved
    behind one address, from looking like instant re-polls (as the ``gap_60s`` feature does)."""
    ev = events[["client", "ua", "start", "end"]].sort_values(["client", "ua", "start"], kind="stable")
    same = (ev["client"].to_numpy()[1:] == ev["client"].to_numpy()[:-1]) & (ev["ua"].to_numpy()[1:] == ev["ua"].to_numpy()[:-1])
    gaps = np.clip(ev["start"].to_numpy(dtype=float)[1:] - ev["end"].to_numpy(dtype=float)[:-1], 0.0, None)
    return pd.Series(gaps[same], index=pd.Index(ev["client"].to_numpy()[1:][same], name="client"), name="gap_s")


def by_population(values: pd.Series, groups: pd.Series) -> dict[str, np.ndarray]:
    """Values indexed by client split by population (largest population first; empty ones left out)."""
    labels = values.index.map(groups).fillna(UNKNOWN).to_numpy() if len(values) else np.empty(0, dtype=object)
    order = population_order(groups) + [UNKNOWN]
    out = {g: values.to_numpy()[labels == g] for g in dict.fromkeys(order)}
    return {g: v for g, v in out.items() if len(v)}


def distribution_table(values: pd.Series, groups: pd.Series,
                       quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> pd.DataFrame:
    """Per population: how many values and clients, and the quantiles of the values."""
    rows = []
    for group, vals in by_population(values, groups).items():
        clients = int(values.index[values.index.map(groups).fillna(UNKNOWN) == group].nunique())
        rows.append({"population": group, "values": len(vals), "clients": clients,
                     **{f"p{round(q * 100):g}": float(np.quantile(vals, q)) for q in quantiles}})
    return pd.DataFrame(rows).set_index("population") if rows else pd.DataFrame()


# -- scores -------------------------------------------------------------------------------------------------------
def client_max_scores(scores: np.ndarray, clients: np.ndarray) -> pd.Series:
    """Each client's highest score over its rows, highest first: what the policy compares to thresholds."""
    series = pd.Series(np.asarray(scores, dtype=np.float64), index=pd.Index(np.asarray(clients), name="client"))
    return series.groupby(level=0).max().sort_values(ascending=False, kind="stable").rename("score")


def level(scores, thresholds: Thresholds) -> np.ndarray:
    """``allow``, ``throttle`` or ``block`` for each score against the thresholds (before the policy's
    hysteresis and escalation: what a score alone asks for).

    >>> level([0.4, 0.6, 0.8], Thresholds(throttle=0.6, block=0.7)).tolist()
    ['allow', 'throttle', 'block']
    """
    s = np.asarray(scores, dtype=np.float64)
    return np.select([s >= thresholds.block, s >= thresholds.throttle], [ACTIONS[2], ACTIONS[1]], ACTIONS[0]).astype(object)


def top_clients(model, rows: TrainingRows, scores: np.ndarray, top: int = 10,
                groups: pd.Series | None = None, explain_top: int = 3) -> pd.DataFrame:
    """The ``top`` clients by highest score: when it came, what it asks for, and why in plain words.

    ``reasons`` are the model's own (``AnomalyModel.explain``) for the client's highest-scoring row,
    the same words its verdict would carry.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return pd.DataFrame(columns=["score", "level", "at", "reasons"]).rename_axis("client")
    frame = pd.DataFrame({"client": rows.clients, "score": scores, "row": np.arange(len(scores))})
    best = frame.sort_values(["score", "row"], ascending=[False, True], kind="stable").drop_duplicates("client")
    best = best.head(top)
    out = pd.DataFrame({
        "score": best["score"].to_numpy(),
        "level": level(best["score"], model.thresholds_),
        "at": [utc(rows.at[i]) for i in best["row"]],
        "reasons": ["; ".join(text for _name, text in model.explain(rows.raw[i], explain_top)) or "(none named)"
                    for i in best["row"]],
    }, index=pd.Index(best["client"].to_numpy(), name="client"))
    if groups is not None:
        out.insert(0, "population", out.index.map(groups).fillna(UNKNOWN))
    return out


# -- two models on the same rows --------------------------------------------------------------------------------
def compare_models(new_scores: pd.Series, old_scores: pd.Series, new: Thresholds, old: Thresholds,
                   names: tuple[str, str] = ("new", "current")) -> pd.DataFrame:
    """Thresholds and how many clients each model's highest scores put over them, on the same clients.

    ``new_scores`` and ``old_scores`` are per-client highest scores (``client_max_scores``) of the same
    feature rows. Rows: thresholds, clients reaching throttle / block, median and 99th percentile of the
    per-client scores, and how the flagged sets overlap; columns: both models and their difference.
    """
    a, b = names
    new_scores, old_scores = new_scores.align(old_scores, join="outer")
    new_flag, old_flag = new_scores >= new.throttle, old_scores >= old.throttle

    def numbers(s: pd.Series, t: Thresholds) -> dict:
        return {"throttle threshold": t.throttle, "block threshold": t.block,
                "clients reaching throttle": int((s >= t.throttle).sum()),
                "clients reaching block": int((s >= t.block).sum()),
                "median client score": float(s.median()), "p99 client score": float(s.quantile(0.99))}

    table = pd.DataFrame({a: numbers(new_scores, new), b: numbers(old_scores, old)})
    table["difference"] = table[a] - table[b]
    overlap = pd.DataFrame({a: [int((new_flag & old_flag).sum()), int((new_flag & ~old_flag).sum()),
                                int((~new_flag & old_flag).sum())]},
                           index=["flagged by both", f"flagged only by {a}", f"flagged only by {b}"])
    return pd.concat([table, overlap]).rename_axis("clients scored: " + str(len(new_scores)))


def flag_changes(new_scores: pd.Series, old_scores: pd.Series, new: Thresholds, old: Thresholds,
                 names: tuple[str, str] = ("new", "current")) -> pd.DataFrame:
    """The clients whose level (allow / throttle / block) differs between the two models, highest new
    score first: who the new model would start or stop acting on."""
    a, b = names
    new_scores, old_scores = new_scores.align(old_scores, join="outer")
    table = pd.DataFrame({f"{a} score": new_scores, f"{b} score": old_scores,
                          f"{a} level": level(new_scores, new), f"{b} level": level(old_scores, old)})
    changed = table[table[f"{a} level"] != table[f"{b} level"]]
    return changed.sort_values(f"{a} score", ascending=False, kind="stable")


#: (row name, path into ``EvaluationResult.metrics``) for ``compare_evaluations``
EVALUATION_ROWS = (
    ("precision", ("model", "precision")), ("recall", ("model", "recall")), ("F1", ("model", "f1")),
    ("false-positive rate", ("model", "fpr")), ("clients flagged", ("model", "flagged")),
    ("false positives", ("model", "fp")), ("clients blocked", ("model", "blocked")),
    ("blocks of protected clients", ("protected_blocks", "count")),
    ("ROC-AUC", ("ranking", "roc_auc")), ("average precision", ("ranking", "average_precision")),
    ("median time to detect (s)", ("time_to_detect", "median_s")),
)


def compare_evaluations(metrics: Mapping[str, dict]) -> pd.DataFrame:
    """The headline evaluation numbers (``detector.evaluate`` metrics) of several models side by side."""
    def pick(mx: dict, path: tuple[str, ...]):
        for key in path:
            mx = mx.get(key) if isinstance(mx, dict) else None
        return np.nan if mx is None else mx

    return pd.DataFrame({name: {row: pick(mx, path) for row, path in EVALUATION_ROWS}
                         for name, mx in metrics.items()})


def card_metrics(metrics: dict) -> dict:
    """The headline numbers of an evaluation (``compare_evaluations`` rows) and what it ran on, JSON-ready
    for a model card's ``metrics``."""
    headline = compare_evaluations({"m": metrics})["m"]
    return {"evaluated_on": metrics.get("sources", {}),
            **{row: (None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v)
               for row, v in headline.items()}}


def describe_training(rows: TrainingRows, logs: Sequence[str | Path], trained_at: str, *,
                      start: float | None = None, end: float | None = None, extra: Mapping | None = None) -> dict:
    """The training description a model card keeps (``save_artifact(description=...)``): the logs, the
    line counts, malformed lines by reason, the time span of the rows, when it was trained."""
    st = rows.stats
    return {"logs": [str(p) for p in logs], "lines": st.read, "parsed": st.parsed, "rejected": st.rejected,
            "malformed": dict(st.malformed), "skipped": dict(st.skipped),
            "span": [float(rows.at.min()), float(rows.at.max())] if len(rows.at) else None,
            "time_range": [start, end] if start is not None or end is not None else None,
            "trained_at": trained_at, **(extra or {})}
