"""Numbers from the per-client table: confusion counts, per-class rates, time to detect, false positives
by population, and how well per-client scores rank abusive clients above normal ones.

Every function takes the per-client table (one row per labelled client, ``abusive`` bool, ``class``,
``population``, ``active_in_outage``) and the name of a boolean "flagged" column, so the model's verdicts
and the rate-limit baseline are measured by the same code. Undefined ratios (0/0) are ``None``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from detector.evaluate.labels import CONSUMER, NAT_OFFICE, class_order

#: The groups the false-positive breakdown reports, in order. A client can be in more than one of the
#: first three (a NAT office active in the outage); ``other`` is a normal client in none of them.
FP_GROUPS = ("nat_office", "consumer", "active_in_outage", "other")


def ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def confusion(abusive: np.ndarray, flagged: np.ndarray) -> dict:
    """TP/FP/FN/TN, precision, recall, F1 and the false-positive rate over normal clients.

    >>> m = confusion(np.array([True, True, False, False, False]), np.array([True, False, True, False, False]))
    >>> m["tp"], m["fp"], m["fn"], m["tn"], m["precision"], m["recall"], round(m["fpr"], 3)
    (1, 1, 1, 2, 0.5, 0.5, 0.333)
    """
    abusive = np.asarray(abusive, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    tp = int((abusive & flagged).sum())
    fp = int((~abusive & flagged).sum())
    fn = int((abusive & ~flagged).sum())
    tn = int((~abusive & ~flagged).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "flagged": tp + fp,
            "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "fpr": ratio(fp, fp + tn)}


def quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return float(np.quantile(values.to_numpy(dtype=float), q)) if len(values) else None


def time_to_detect(table: pd.DataFrame) -> dict:
    """Seconds from ``attack_start`` until the attacker is under a throttle or block (``ttd``; 0 when a
    verdict reached earlier still holds then), over the attackers detected so.

    Attackers whose first flag came before their attack started are also counted apart
    (``flagged_before_attack``). With a log, ``lag`` gives the same from when the log first showed the attack.
    """
    ab = table[table["abusive"]]
    ttd = ab["ttd"].dropna()
    out = {"detected_in_attack": int(len(ttd)), "median_s": quantile(ttd, 0.5), "p90_s": quantile(ttd, 0.9),
           "max_s": float(ttd.max()) if len(ttd) else None,
           "flagged_before_attack": int(ab["flagged_before_attack"].sum()),
           "flagged_before_attack_clients": sorted(ab.index[ab["flagged_before_attack"]].tolist())}
    if "lag" in ab:  # with a log: the part of the time to detect spent after the log showed the attack
        out.update(lag_median_s=quantile(ab["lag"], 0.5), lag_p90_s=quantile(ab["lag"], 0.9))
    return out


def per_class(table: pd.DataFrame, flagged: str = "flagged", blocked: str | None = "blocked") -> dict:
    """Recall per attack class (abusive clients) and flag rate per class of normal clients."""
    out: dict[str, dict] = {"abusive": {}, "normal": {}}
    for label, kind in ((True, "abusive"), (False, "normal")):
        part = table[table["abusive"] == label]
        for cls in class_order(part["class"].unique()):
            rows = part[part["class"] == cls]
            n, hit = len(rows), int(rows[flagged].sum())
            entry = {"clients": n}
            if label:
                entry.update(detected=hit, recall=ratio(hit, n))
            else:
                entry.update(flagged=hit, flag_rate=ratio(hit, n))
            if blocked is not None:
                entry["blocked"] = int(rows[blocked].sum())
            if label and "ttd" in rows:
                entry.update(ttd_median_s=quantile(rows["ttd"], 0.5), ttd_p90_s=quantile(rows["ttd"], 0.9),
                             flagged_before_attack=int(rows["flagged_before_attack"].sum()))
                if "lag" in rows:
                    entry["lag_median_s"] = quantile(rows["lag"], 0.5)
            out[kind][cls] = entry
    return out


def fp_groups(table: pd.DataFrame) -> dict[str, pd.Series]:
    """Boolean masks over the table for each of ``FP_GROUPS`` (normal clients only).

    A normal client's class is its population; the ``population`` column is also read, for labels
    that name the population there.
    """
    normal = ~table["abusive"]

    def member(name: str) -> pd.Series:
        return normal & ((table["class"] == name) | (table["population"] == name))

    nat, consumer = member(NAT_OFFICE), member(CONSUMER)
    outage = normal & table["active_in_outage"]
    return {"nat_office": nat, "consumer": consumer, "active_in_outage": outage,
            "other": normal & ~nat & ~consumer & ~outage}


def false_positives(table: pd.DataFrame, flagged: str = "flagged", blocked: str | None = "blocked") -> dict:
    """False positives by group (``FP_GROUPS``): clients in the group, flagged, blocked, and who."""
    out = {}
    for name, mask in fp_groups(table).items():
        rows = table[mask]
        hit = rows[rows[flagged]]
        entry = {"clients": int(len(rows)), "flagged": int(len(hit)), "flag_rate": ratio(len(hit), len(rows)),
                 "flagged_clients": sorted(hit.index.tolist())}
        if blocked is not None:
            entry["blocked"] = int(rows[blocked].sum())
        out[name] = entry
    return out


def protected_blocks(table: pd.DataFrame) -> dict:
    """Blocks of normal NAT-office, consumer or outage-active clients: the requirement is zero."""
    groups = fp_groups(table)
    protected = groups["nat_office"] | groups["consumer"] | groups["active_in_outage"]
    hit = table[protected & table["blocked"]]
    return {"count": int(len(hit)), "clients": sorted(hit.index.tolist())}


def ranking(abusive: np.ndarray, scores: np.ndarray) -> dict:
    """ROC-AUC and average precision of per-client scores (``None`` unless both labels are present)."""
    abusive = np.asarray(abusive, dtype=bool)
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0)
    if abusive.all() or not abusive.any():
        return {"roc_auc": None, "average_precision": None}
    return {"roc_auc": float(roc_auc_score(abusive, scores)),
            "average_precision": float(average_precision_score(abusive, scores))}


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def plain(value):
    """``value`` with numpy scalars turned into Python ones and NaN into ``None`` (for JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
