"""Drift: how today's feature values differ from the training day's, feature by feature.

A ``FeatureProfile`` describes the training rows of a model: for each feature, its quantiles at
``PROBS``, the exact share of training values at or below each of them (``cdf``), and the share of rows
where the feature could not be measured (NaN). ``notebooks/retrain.ipynb`` stores it in the model card
(``card["training"]["feature_profile"]``); for a model without one, ``profile_from_model`` rebuilds a
coarse profile from the 5/50/95th percentiles every fitted ``AnomalyModel`` keeps (``reference_``).

``drift_table`` compares new feature rows against a profile: quantile shifts, and the population
stability index (PSI) over the bins the profile's quantiles cut, PSI = Σ (a − e) · ln(a / e) over bins with
expected shares e and actual shares a. By a common rule of thumb a PSI under 0.1 is stable, 0.1–0.25 a
moderate shift, over 0.25 a major one. Features are matched by name, so a profile of an older feature
schema still compares on the features both share.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from detector.features.catalog import FEATURE_NAMES, SPECS

PROBS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
REFERENCE_PROBS = (0.05, 0.5, 0.95)  # what AnomalyModel.reference_ holds
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
EPSILON = 1e-4  # share floor, so an empty bin costs a large but finite PSI


@dataclass(frozen=True)
class FeatureProfile:
    """Quantiles (``len(probs)`` x features), the share of values at or below each, and missing shares."""

    names: tuple[str, ...]
    probs: tuple[float, ...]
    quantiles: np.ndarray
    cdf: np.ndarray
    missing: np.ndarray  # NaN where unknown
    exact: bool = True  # False: cdf is approximated by probs (rebuilt from a model's reference)
    source: str = ""  # where it comes from, in words

    def to_dict(self) -> dict:
        """A JSON-ready form for the model card."""
        def col(a: np.ndarray, i: int) -> list:
            return [None if not np.isfinite(v) else float(v) for v in a[:, i]]

        return {"probs": list(self.probs), "exact": self.exact,
                "features": {n: {"quantiles": col(self.quantiles, i), "cdf": col(self.cdf, i),
                                 "missing": None if np.isnan(self.missing[i]) else float(self.missing[i])}
                             for i, n in enumerate(self.names)}}

    @classmethod
    def from_dict(cls, data: dict, source: str = "") -> FeatureProfile:
        feats = data["features"]
        names = tuple(feats)

        def stack(key: str) -> np.ndarray:
            return np.array([[np.nan if v is None else v for v in feats[n][key]] for n in names],
                            dtype=np.float64).T.reshape(len(data["probs"]), len(names))

        missing = np.array([np.nan if feats[n]["missing"] is None else feats[n]["missing"] for n in names])
        return cls(names, tuple(data["probs"]), stack("quantiles"), stack("cdf"), missing,
                   bool(data.get("exact", True)), source)


def profile(raw: np.ndarray, names: Sequence[str] = FEATURE_NAMES, probs: Sequence[float] = PROBS,
            source: str = "") -> FeatureProfile:
    """The profile of some feature rows (NaN = not measured; quantiles over the measured values)."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(names))
    k = len(probs)
    quantiles = np.full((k, len(names)), np.nan)
    cdf = np.full((k, len(names)), np.nan)
    for i in range(len(names)):
        values = raw[~np.isnan(raw[:, i]), i]
        if len(values):
            quantiles[:, i] = np.quantile(values, probs)
            cdf[:, i] = np.searchsorted(np.sort(values), quantiles[:, i], side="right") / len(values)
    missing = np.isnan(raw).mean(axis=0) if len(raw) else np.full(len(names), np.nan)
    return FeatureProfile(tuple(names), tuple(probs), quantiles, cdf, missing, source=source)


def profile_from_model(model, source: str = "the 5/50/95th percentiles the model keeps (coarse)") -> FeatureProfile:
    """A coarse profile from a fitted model's 5/50/95th percentiles of its training rows (``reference_``);
    the share at or below each is taken to be its probability, and missing shares are unknown."""
    names = tuple(model.feature_names_in_)
    quantiles = np.asarray(model.reference_, dtype=np.float64)
    cdf = np.repeat(np.asarray(REFERENCE_PROBS)[:, None], len(names), axis=1)
    return FeatureProfile(names, REFERENCE_PROBS, quantiles, cdf, np.full(len(names), np.nan), exact=False,
                          source=source)


def profile_of(model, card: dict) -> FeatureProfile:
    """The training profile of a model: the card's, or else the one rebuilt from the model."""
    stored = (card.get("training") or {}).get("feature_profile")
    version = card.get("version", "")
    if stored:
        return FeatureProfile.from_dict(stored, f"the feature profile in the model card of {version}")
    return profile_from_model(model, f"the 5/50/95th percentiles model {version} keeps (coarse: its card "
                                     "has no feature profile)")


def bins(quantiles: np.ndarray, cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right-closed bin edges (the distinct quantiles) and the expected share in each of the
    ``len(edges) + 1`` bins: (-inf, e1], (e1, e2], ..., (ek, inf).

    A value repeated at several probabilities (a feature that is mostly 0) is one edge, whose share at
    or below is the largest given for it.

    >>> edges, shares = bins(np.array([0.0, 0.0, 2.0]), np.array([0.6, 0.6, 0.9]))
    >>> edges.tolist(), shares.round(3).tolist()
    ([0.0, 2.0], [0.6, 0.3, 0.1])
    """
    ok = np.isfinite(quantiles) & np.isfinite(cdf)
    q, c = quantiles[ok], cdf[ok]
    edges = np.unique(q)
    at_or_below = np.array([c[q == e].max() for e in edges])
    at_or_below = np.maximum.accumulate(at_or_below) if len(at_or_below) else at_or_below
    return edges, np.diff(np.concatenate([[0.0], at_or_below, [1.0]]))


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each right-closed bin of ``edges`` (see ``bins``).

    >>> shares(np.array([0.0, 0.0, 1.0, 5.0]), np.array([0.0, 2.0])).tolist()
    [0.5, 0.25, 0.25]
    """
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index Σ (a − e) · ln(a / e), each share floored at ``epsilon``.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 4)
    0.2747
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def level(value: float) -> str:
    """A PSI in words.

    >>> level(0.05), level(0.2), level(1.3), level(float("nan"))
    ('stable', 'moderate', 'major', 'n/a')
    """
    if not np.isfinite(value):
        return "n/a"
    return "major" if value > PSI_MAJOR else "moderate" if value > PSI_MODERATE else "stable"


def drift_table(reference: FeatureProfile, raw: np.ndarray, names: Sequence[str] = FEATURE_NAMES) -> pd.DataFrame:
    """Per feature both the profile and ``raw`` have, most drifted first: training and current median
    and 95th percentile, the median's shift in units of the training 5–95th percentile span, the PSI and
    its reading, and the share of rows where the feature was not measured (then and now)."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(names))
    now = profile(raw, names, reference.probs)
    col = {n: i for i, n in enumerate(names)}
    rows = []
    for j, name in enumerate(reference.names):
        if name not in col:
            continue
        i = col[name]
        values = raw[~np.isnan(raw[:, i]), i]
        edges, expected = bins(reference.quantiles[:, j], reference.cdf[:, j])
        value = psi(expected, shares(values, edges)) if len(values) and len(edges) else np.nan
        ref_q = dict(zip(reference.probs, reference.quantiles[:, j]))
        now_q = dict(zip(now.probs, now.quantiles[:, i]))
        span = ref_q.get(0.95, np.nan) - ref_q.get(0.05, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shift = (now_q.get(0.5, np.nan) - ref_q.get(0.5, np.nan)) / max(span, 1e-9) if np.isfinite(span) else np.nan
        spec = SPECS.get(name)
        rows.append({"feature": name, "measures": spec.label if spec else "",
                     "train p50": ref_q.get(0.5, np.nan), "now p50": now_q.get(0.5, np.nan),
                     "train p95": ref_q.get(0.95, np.nan), "now p95": now_q.get(0.95, np.nan),
                     "median shift": shift, "psi": value, "drift": level(value),
                     "missing train": reference.missing[j], "missing now": now.missing[i]})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("psi", ascending=False, kind="stable", na_position="last").set_index("feature")


def unmatched(reference: FeatureProfile, names: Sequence[str] = FEATURE_NAMES) -> dict[str, list[str]]:
    """Features only the training profile has, and those only the current code computes."""
    return {"only in training": [n for n in reference.names if n not in names],
            "only now": [n for n in names if n not in reference.names]}
