"""The IsolationForest wrapper: fit on feature rows, score, calibrate thresholds, explain, save and load.

**Score sign, stated once for the whole project: higher = more anomalous.** ``score_samples`` returns
``-IsolationForest.score_samples`` (computed by ``detector.forest`` for speed), the forest's anomaly score in (0, 1]: about 0.5 for ordinary
points, towards 1 for points isolated in very few splits.

A forest cannot tell how far beyond its training data a point lies: a split falls between training
values, so a client with 53 failed logins a minute lands in the same leaf as the training day's worst
client with one. For the features marked ``ceiling`` in the catalogue (counts of what one program does,
where more is worse) the model remembers the training day's highest value, and a client beyond it has
its score moved towards 1: the distance left to 1 shrinks by ``exp(-beyond * excess)``, ``excess``
being how far past the ceiling it is in ``log1p`` units (1: about e times the ceiling). A feature kept
out of the forest (``FeatureSpec.forest``) acts only so: below its ceiling it changes nothing.
Thresholds are calibrated on scores cross-fitted the same way (each training log, or half of the
clients, judged against the ceilings of the others), so they count how often a normal client of a new
day goes past the old day's highest.

The wrapper follows scikit-learn's estimator contract (``fit``, ``score_samples``, fitted attributes end
in ``_``). It takes *raw* feature values and owns their transform (``log1p`` of heavy-tailed columns,
median imputation of values a window could not measure), so an artifact carries everything needed to
score. Thresholds are calibrated per client, not per row: a client is scored at many ticks, so the
throttle threshold is the ``1 - throttle_fpr`` quantile of the training clients' highest (cross-fitted)
scores; ``training_["score_quantiles"]`` in the card are those cross-fitted scores too.
"""

from __future__ import annotations

import json
import platform
import re
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from detector.features.catalog import FEATURES, FeatureSpec
from detector.forest import CompiledForest
from detector.records import BLOCK_FPR, THROTTLE_FPR, Thresholds

ARTIFACT_FILE = "model.joblib"
CARD_FILE = "card.json"
CURRENT = "current"


class ModelSchemaError(ValueError):
    """An artifact whose features do not match what this code computes."""


class AnomalyModel(BaseEstimator):
    """IsolationForest anomaly model over detector's features (higher score = more anomalous).

    Parameters
    ----------
    n_estimators, max_samples, random_state:
        passed to :class:`~sklearn.ensemble.IsolationForest`. ``max_samples`` well above sklearn's
        default of 256 keeps scores from saturating on heterogeneous traffic.
    max_rows:
        at most this many training rows are used to fit (a uniform sample); all rows calibrate.
    throttle_fpr, block_fpr:
        the share of training clients whose highest score may reach the throttle / block threshold.
    contamination:
        the share of training clients assumed abusive; they are left out of calibration.
    block_margin:
        a block needs more than the most unusual training client: the block threshold is at least the
        throttle threshold plus ``block_margin`` times its distance from the median client's highest
        score, because the extreme quantile of a few thousand training clients is their maximum.
    tail_share:
        thresholds are read off an exponential fit to this top share of the training clients' scores
        (``tail_quantile``), not off the one or two clients the raw quantile would pick; 0 uses the raw
        quantile.
    beyond:
        how strongly a value past a ``ceiling`` feature's training maximum raises the score (see the
        module docstring); 0 scores with the forest alone. At 0.5 a client scored 0.55 by the forest
        reaches a typical throttle threshold (0.66) at about 1.75 times the ceiling and a typical block
        threshold (0.77) at about 3.8 times: one count somewhat past the training day throttles, only
        one far past it blocks.
    ceiling_floor:
        no ceiling is below this raw value (6: one event in a 10 s window, per minute): a count the
        training day barely saw (no 429s, one 404 a minute) is not suspicious at its first few events.
    """

    def __init__(self, n_estimators: int = 300, max_samples: int = 4096, max_rows: int = 200_000,
                 random_state: int = 0, throttle_fpr: float = THROTTLE_FPR, block_fpr: float = BLOCK_FPR,
                 contamination: float = 0.0, specs: Sequence[FeatureSpec] = FEATURES, max_features: float = 1.0,
                 block_margin: float = 0.5, tail_share: float = 0.01, beyond: float = 0.5,
                 ceiling_floor: float = 6.0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.max_rows = max_rows
        self.random_state = random_state
        self.throttle_fpr = throttle_fpr
        self.block_fpr = block_fpr
        self.contamination = contamination
        self.specs = specs
        self.block_margin = block_margin
        self.tail_share = tail_share
        self.beyond = beyond
        self.ceiling_floor = ceiling_floor

    # -- the transform the artifact owns ------------------------------------------------------
    def _logs(self, raw: np.ndarray) -> np.ndarray:
        x = np.asarray(raw, dtype=np.float64).copy()
        x[:, self.log_mask_] = np.log1p(np.clip(x[:, self.log_mask_], 0.0, None))
        return x

    def _impute(self, x: np.ndarray) -> np.ndarray:
        nan = np.isnan(x)
        if nan.any():
            x[nan] = np.take(self.impute_, np.nonzero(nan)[1])
        return x

    def _transform(self, raw: np.ndarray) -> np.ndarray:
        return self._impute(self._logs(raw))

    def fit(self, X: np.ndarray, y=None, groups: np.ndarray | None = None,
            exclude: np.ndarray | None = None,
            judged: Callable[[np.ndarray], np.ndarray] | None = None,
            folds: np.ndarray | None = None) -> AnomalyModel:
        """Fit on raw feature rows; ``groups`` (the client of each row) makes calibration per client.

        Rows flagged in ``exclude`` (ticks the policy never blames, such as an outage) shape the forest
        but not the thresholds. ``judged`` maps the rows' scores to the scores the policy acts on (its
        confirmation rule, ``detector.policy.confirmed_scores``), so that the thresholds are calibrated on
        what will be judged. ``folds`` (the log of each row) cross-fits the ceilings for calibration; without
        it, or with one log, the clients are split in two halves.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.specs):
            raise ValueError(f"expected {len(self.specs)} feature columns, got shape {X.shape}")
        if len(X) < 2:
            raise ValueError("need at least two feature rows to fit")
        self.feature_names_in_ = np.array([s.name for s in self.specs], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.log_mask_ = np.array([s.log for s in self.specs], dtype=bool)
        self.forest_mask_ = np.array([s.forest for s in self.specs], dtype=bool)
        x = self._logs(X)
        measured = x.copy()  # before imputation: a ceiling is what clients were measured doing
        with warnings.catch_warnings():  # a column a format never fills (hold time in combined logs)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.impute_ = np.nan_to_num(np.nanmedian(x, axis=0), nan=0.0)
            reference = np.nanpercentile(X, [5, 50, 95], axis=0)
        x = self._impute(x)
        rng = np.random.default_rng(self.random_state)
        fit_rows = x if len(x) <= self.max_rows else x[rng.choice(len(x), self.max_rows, replace=False)]
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(fit_rows)),
            max_features=self.max_features, random_state=self.random_state, n_jobs=1,
        ).fit(fit_rows[:, self.forest_mask_])
        self.__dict__.pop("_compiled", None)
        # normal ranges for reasons, in raw units
        self.reference_ = np.nan_to_num(reference, nan=0.0)
        self.scale_ = np.maximum(np.subtract(*np.percentile(x, [95, 5], axis=0)), 1e-3)
        self.center_ = np.median(x, axis=0)
        # Ceilings come from every row, incident ticks included: a normal client retrying through an
        # outage sets how many 5xx a program may get before that alone counts against it.
        self.ceiling_ = self._ceilings(measured)
        self.ceiling_raw_ = np.where(self.log_mask_, np.expm1(self.ceiling_), self.ceiling_)
        forest = self._forest_score(x)
        scores = np.empty(len(x))
        for fold in _folds(folds, groups, len(x)):
            others = np.ones(len(x), dtype=bool)
            others[fold] = False
            held_out = self._ceilings(measured[others]) if others.any() else self.ceiling_
            scores[fold] = self._raise(forest[fold], x[fold], held_out)
        keep = np.ones(len(X), dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
        acted_on = scores if judged is None else np.maximum(judged(scores), 0.0)
        grouped = None if groups is None else np.asarray(groups)
        # what thresholds are read off, kept so that other false-positive targets can be asked for later
        # (``thresholds_at``): each training client's highest judged score, outside and during incidents
        self.calibration_ = np.sort(_highest_per_client(acted_on[keep], None if grouped is None else grouped[keep]))
        self.incident_calibration_ = np.sort(_highest_per_client(acted_on[~keep],
                                                                 None if grouped is None else grouped[~keep]))
        # one tick acts unconfirmed only beyond every training client's highest single tick (outside
        # incidents), and never below the block threshold
        self.single_tick_max_ = float(scores[keep].max()) if keep.any() else None
        self.thresholds_ = self.thresholds_at(self.throttle_fpr, self.block_fpr)
        self.training_ = {
            "rows": int(len(X)), "fit_rows": int(len(fit_rows)),
            "clients": int(len(np.unique(groups))) if groups is not None else None,
            "score_quantiles": {q: float(np.quantile(scores, float(q))) for q in ("0.5", "0.9", "0.99", "0.999")},
            "single_tick_max": self.single_tick_max_,  # see thresholds_.single
        }
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score of each raw feature row: higher = more anomalous, in (0, 1]."""
        check_is_fitted(self, "forest_")
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            return np.empty(0)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        x = self._transform(X)
        return self._raise(self._forest_score(x), x, self.ceiling_)

    def _forest_score(self, x: np.ndarray) -> np.ndarray:
        """The forest's own scores of transformed rows ``x`` (of every feature; it reads those it was fitted on)."""
        return self._compiled_forest().score(x[:, self.forest_mask_])

    def _compiled_forest(self) -> CompiledForest:
        compiled = self.__dict__.get("_compiled")
        if compiled is None:  # built on first use, not pickled: the artifact holds the sklearn forest
            compiled = self._compiled = CompiledForest.from_sklearn(self.forest_)
        return compiled

    def _ceilings(self, measured: np.ndarray) -> np.ndarray:
        """Per feature (transformed, before imputation): the highest value measured, never below the
        floor; +inf for features without a ceiling and for those these rows never measured."""
        floor = np.where(self.log_mask_, np.log1p(max(self.ceiling_floor, 0.0)), self.ceiling_floor)
        ceiling = np.array([s.ceiling for s in self.specs], dtype=bool) & ~np.isnan(measured).all(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            top = np.nanmax(measured, axis=0) if len(measured) else np.full(measured.shape[1], np.nan)
        return np.where(ceiling, np.maximum(np.nan_to_num(top, nan=-np.inf), floor), np.inf)

    def _raise(self, scores: np.ndarray, x: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
        """Forest scores moved towards 1 where a transformed row ``x`` passes a ``ceiling``."""
        cols = np.isfinite(ceiling)
        if self.beyond <= 0 or not cols.any():
            return scores
        excess = np.clip(x[:, cols] - ceiling[cols], 0.0, None).max(axis=1, initial=0.0)
        return 1.0 - (1.0 - scores) * np.exp(-self.beyond * excess)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_compiled", None)
        return state

    def calibrate(self, scores: np.ndarray, groups: np.ndarray | None = None,
                  throttle_fpr: float | None = None, block_fpr: float | None = None) -> Thresholds:
        """Thresholds from training scores: per client (its highest score) when ``groups`` is given."""
        throttle_fpr = self.throttle_fpr if throttle_fpr is None else throttle_fpr
        block_fpr = self.block_fpr if block_fpr is None else block_fpr
        per_client = np.sort(_highest_per_client(scores, groups))
        if self.contamination > 0:
            per_client = per_client[: max(1, int(round(len(per_client) * (1 - self.contamination))))]
        throttle = tail_quantile(per_client, throttle_fpr, self.tail_share)
        spread = max(throttle - float(np.median(per_client)), 0.0)
        block = max(tail_quantile(per_client, block_fpr, self.tail_share), throttle + self.block_margin * spread)
        return Thresholds(throttle=throttle, block=block, throttle_fpr=throttle_fpr, block_fpr=block_fpr)

    def thresholds_at(self, throttle_fpr: float | None = None, block_fpr: float | None = None) -> Thresholds:
        """The thresholds for other false-positive targets (shares of training clients whose highest judged
        score may reach throttle / block), read off the scores the model was calibrated on; ``None`` keeps
        the model's own target. Raises ``ValueError`` for a target outside [0, 1) or a block target above the
        throttle one."""
        check_is_fitted(self, "forest_")
        if not hasattr(self, "calibration_"):
            raise ValueError("this model artifact keeps no calibration scores (trained by an older detector): "
                             "retrain it to serve other false-positive targets")
        throttle_fpr = self.throttle_fpr if throttle_fpr is None else float(throttle_fpr)
        block_fpr = self.block_fpr if block_fpr is None else float(block_fpr)
        for name, value in (("throttle_fpr", throttle_fpr), ("block_fpr", block_fpr)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be at least 0 and below 1, got {value}")
        if block_fpr > throttle_fpr:
            raise ValueError(f"block_fpr ({block_fpr}) must not exceed throttle_fpr ({throttle_fpr})")
        thresholds = self.calibrate(self.calibration_, None, throttle_fpr, block_fpr)
        incident = self.calibrate_incident(self.incident_calibration_, None, throttle_fpr=throttle_fpr,
                                           throttle=thresholds.throttle)
        single = None if self.single_tick_max_ is None else max(thresholds.block, self.single_tick_max_)
        return replace(thresholds, incident=incident, single=single)

    def calibrate_incident(self, scores: np.ndarray, groups: np.ndarray | None = None,
                           min_clients: int = 200, throttle_fpr: float | None = None,
                           throttle: float | None = None) -> float | None:
        """The throttle threshold for incident ticks, from the training clients' scores during incidents
        (an outage: everyone retries at once): the ``throttle_fpr`` tail of their highest scores then, and
        never below the ordinary throttle threshold. ``None`` (no new verdicts during incidents) when the
        training logs hold fewer than ``min_clients`` clients in incidents."""
        per_client = _highest_per_client(scores, groups)
        if len(per_client) < max(min_clients, 1):
            return None
        throttle_fpr = self.throttle_fpr if throttle_fpr is None else throttle_fpr
        throttle = self.thresholds_.throttle if throttle is None else throttle
        return max(tail_quantile(per_client, throttle_fpr, self.tail_share), throttle)

    def explain(self, raw: np.ndarray, top: int = 3) -> list[tuple[str, str]]:
        """The ``top`` features that lie furthest outside the training day, as (name, plain words); those
        past their ceiling first, with the ceiling ("past the training ceiling 6")."""
        check_is_fitted(self, "forest_")
        raw = np.asarray(raw, dtype=np.float64)
        x = self._transform(raw[None, :])[0]
        z = np.abs(x - self.center_) / self.scale_
        past = x > self.ceiling_
        z[np.isnan(raw) | np.array([s.context for s in self.specs]) | (~self.forest_mask_ & ~past)] = 0.0
        z[past] += 1e6 * (1.0 + x[past] - self.ceiling_[past])  # past the training day's highest: named first
        out = []
        for i in np.argsort(-z)[:top]:
            if z[i] < 0.5:
                break
            spec = self.specs[i]
            lo, _mid, hi = self.reference_[:, i]
            most = f"; past the training ceiling {_fmt(self.ceiling_raw_[i])}{spec.unit}" if past[i] else ""
            out.append((spec.name, f"{spec.label} {_fmt(raw[i])}{spec.unit} "
                                   f"(normal {_fmt(lo)}–{_fmt(hi)}{spec.unit}{most})"))
        return out


def _folds(folds: np.ndarray | None, groups: np.ndarray | None, n: int) -> list[np.ndarray]:
    """Row indices of each calibration fold: one per value of ``folds`` (the training logs) when there are
    two or more, else two halves of the clients (``groups``; of the rows without them).

    >>> [f.tolist() for f in _folds(np.array(["a", "b", "a"]), None, 3)]
    [[0, 2], [1]]
    >>> [f.tolist() for f in _folds(None, None, 4)]
    [[0, 2], [1, 3]]
    """
    if folds is not None and len(np.unique(folds)) > 1:
        _, code = np.unique(np.asarray(folds), return_inverse=True)
    elif groups is not None:
        _, code = np.unique(np.asarray(groups), return_inverse=True)
        code = code % 2
    else:
        code = np.arange(n) % 2
    return [np.flatnonzero(code == k) for k in np.unique(code)]


def _highest_per_client(scores: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Each client's highest score (the scores themselves without ``groups``)."""
    if groups is None:
        return np.asarray(scores, dtype=np.float64)
    return pd.Series(scores, dtype=np.float64).groupby(np.asarray(groups)).max().to_numpy()


def tail_quantile(values: np.ndarray, p: float, tail_share: float = 0.01, min_tail: int = 10) -> float:
    """The value exceeded by a share ``p`` of ``values``, read off an exponential fit to their upper tail.

    The raw ``1 - p`` quantile of a few thousand clients is one of the top few of them and moves a lot
    with the forest's random seed; peaks over a threshold use the whole top ``tail_share``: with ``u``
    the value ``k`` clients exceed and ``beta`` their mean excess over it, the quantile is
    ``u + beta * ln(k / (n p))``. Where the tail is smaller than ``min_tail`` clients, or ``p`` is not
    beyond it, the empirical quantile is used.

    >>> v = np.arange(1, 1001, dtype=float)  # top 1 %: 991..1000 over u = 990, mean excess 5.5
    >>> round(tail_quantile(v, 0.001), 2), round(tail_quantile(v, 0.5), 1)  # 990 + 5.5 * ln(10)
    (1002.66, 500.5)
    >>> tail_quantile(v, 0.0)  # a target of 0: the highest
    1000.0
    """
    values = np.sort(np.asarray(values, dtype=np.float64))
    n = len(values)
    k = int(np.ceil(tail_share * n))
    if p <= 0:  # nobody may exceed it: the highest
        return float(values[-1])
    if tail_share <= 0 or k < min_tail or k >= n or p * n >= k:
        return float(np.quantile(values, 1 - p))
    u = values[n - k - 1]
    beta = float(np.mean(values[n - k:] - u))
    return float(u + beta * np.log(k / (n * p)))


def _fmt(v: float) -> str:
    """A number as a person writes it.

    >>> _fmt(0.0312), _fmt(3.25), _fmt(412.7)
    ('0.031', '3.2', '413')
    """
    if not np.isfinite(v):
        return "n/a"
    a = abs(v)
    if a >= 100 or a == int(a):
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}" if a >= 0.01 else f"{v:.3f}"


# -- artifacts --------------------------------------------------------------------------------------
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def save_artifact(model: AnomalyModel, directory: str | Path, version: str, description: dict | None = None,
                  metrics: dict | None = None) -> Path:
    """Write ``model`` as ``directory/<version>/`` (model.joblib + card.json); return that folder."""
    if not _VERSION.match(version):
        raise ValueError(f"bad model version {version!r}")
    check_is_fitted(model, "forest_")
    out = Path(directory) / version
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / ARTIFACT_FILE, compress=3)
    card = {
        "version": version,
        "features": list(model.feature_names_in_),
        "thresholds": asdict(model.thresholds_),
        "params": {k: v for k, v in model.get_params().items() if k != "specs"},
        "training": {**model.training_, **(description or {})},
        "metrics": metrics or {},
        "libraries": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                      "numpy": np.__version__, "pandas": pd.__version__},
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")
    return out


def load_artifact(path: str | Path, specs: Sequence[FeatureSpec] = FEATURES) -> tuple[AnomalyModel, dict]:
    """Load an artifact folder (or a models folder with a ``current`` pointer); check its schema."""
    path = resolve(path)
    card_path, model_path = path / CARD_FILE, path / ARTIFACT_FILE
    if not card_path.is_file() or not model_path.is_file():
        raise FileNotFoundError(f"{path}: not a model artifact (needs {CARD_FILE} and {ARTIFACT_FILE})")
    card = json.loads(card_path.read_text())
    expected = [s.name for s in specs]
    if card.get("features") != expected:
        raise ModelSchemaError(
            f"{path}: model features {card.get('features')} do not match this version's features {expected}")
    model = joblib.load(model_path)
    if not isinstance(model, AnomalyModel) or list(model.feature_names_in_) != expected:
        raise ModelSchemaError(f"{path}: artifact does not hold a detector model with the expected features")
    return model, card


def resolve(path: str | Path) -> Path:
    """An artifact folder: ``path`` itself, or what a ``current`` pointer in (or at) ``path`` names."""
    path = Path(path)
    if path.is_file() and path.name == CURRENT:
        return path.parent / path.read_text().strip()
    if (path / CURRENT).is_file() and not (path / CARD_FILE).exists():
        return path / (path / CURRENT).read_text().strip()
    return path


def set_current(models_dir: str | Path, version: str) -> None:
    """Point ``models_dir/current`` at ``version`` (written atomically)."""
    models_dir = Path(models_dir)
    if not (models_dir / version / CARD_FILE).is_file():
        raise FileNotFoundError(f"no model artifact {models_dir / version}")
    tmp = models_dir / (CURRENT + ".tmp")
    tmp.write_text(version + "\n")
    tmp.replace(models_dir / CURRENT)
