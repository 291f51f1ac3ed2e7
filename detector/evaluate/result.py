"""Labels + verdicts (+ scores, + request times) -> the per-client table and every metric.

The per-client table has one row per labelled client (index ``client``): the label columns, then

==========================  =====================================================================
``abusive``                 label == "abusive"
``flagged``, ``blocked``    ever throttled or blocked / ever blocked (verdict lines)
``first_flag``              ``at`` of the first throttle/block line
``first_flag_in_attack``    the first moment at or after ``attack_start`` under a throttle/block (``attack_start``
                            itself when one reached before still held then)
``ttd``                     ``first_flag_in_attack - attack_start`` (seconds)
``flagged_before_attack``   an abusive client whose first flag came before ``attack_start``
``first_seen``              when the log first showed the attack: the earliest end among its requests that
                            started at or after ``attack_start``, or start where a start record showed one
                            (Envoy; only with a log)
``lag``                     ``first_flag_in_attack - first_seen``, at least 0: detection after the evidence
                            reached the log (only with a log)
``score``                   per-client score for ROC-AUC/AP (see ``metrics["ranking"]["score_source"]``)
``max_rate``                most requests in any 60 s window (only with a log)
``rate_flagged``            the tuned rate limit flags it (only with a log)
==========================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.evaluate import metrics as m
from detector.evaluate.baseline import BaselineResult, RequestTimes, best_limit
from detector.evaluate.labels import Labels
from detector.evaluate.verdicts import expand_range_scores, expand_ranges, first_flag_from, per_client

SCORES_FROM_VERDICTS = ("max score over each client's verdict lines; clients without a line score 0, as the "
                        "verdicts file only holds clients the policy acted on")
SCORES_FROM_REPLAY = ("max score over every tick the pipeline scored the client; clients absent from the "
                      "log score 0")


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Everything ``write_report`` and ``format_summary`` need; ``metrics`` is JSON-ready."""

    metrics: dict
    clients: pd.DataFrame
    baseline: BaselineResult | None
    verdicts: pd.DataFrame  # the verdict lines (verdicts.verdict_frame)
    outage: tuple[float, float] | None = None
    thresholds: dict | None = None  # {"throttle": x, "block": y} from the model card, when known


def evaluate(labels: Labels, verdicts: pd.DataFrame, *, scores: pd.Series | None = None,
             requests: RequestTimes | None = None, thresholds: dict | None = None,
             sources: dict | None = None) -> EvaluationResult:
    """Measure ``verdicts`` against ``labels``; ``scores`` per client replace the verdict-line maxima."""
    table = labels.frame.copy()
    table["abusive"] = table["label"] == "abusive"
    per_address = expand_ranges(verdicts, table.index)  # a verdict on a /24 counts for each address in it
    seen = per_client(per_address)
    table = table.join(seen, how="left")
    table["flagged"] = table["flagged"].fillna(False).astype(bool)
    table["blocked"] = table["blocked"].fillna(False).astype(bool)
    table["verdict_lines"] = table["verdict_lines"].fillna(0).astype(int)
    if scores is None:
        table["score"] = table["verdict_score"].fillna(0.0)
    else:
        table["score"] = expand_range_scores(scores, table.index).reindex(table.index).astype(float).fillna(0.0)
    table = table.drop(columns="verdict_score")
    table["first_flag_in_attack"] = first_flag_from(per_address, table["attack_start"]).reindex(table.index)
    table["ttd"] = table["first_flag_in_attack"] - table["attack_start"]
    table["flagged_before_attack"] = table["abusive"] & (table["first_flag"] < table["attack_start"])

    baseline, rates = None, None
    if requests is not None:
        rates = requests.max_counts()
        table["max_rate"] = rates.reindex(table.index).fillna(0).astype(np.int64)
        baseline = best_limit(table["max_rate"].to_numpy(), table["abusive"].to_numpy(), basis=requests.basis)
        table["rate_flagged"] = baseline.flags(table["max_rate"])
        table["first_seen"] = requests.first_seen(table["attack_start"].dropna()).reindex(table.index)
        table["lag"] = (table["first_flag_in_attack"] - table["first_seen"]).clip(lower=0.0)

    metrics = _metrics(table, verdicts, seen, baseline, requests, rates, scores is not None)
    metrics["outage"] = None if labels.outage is None else dict(zip(("start", "end"), labels.outage))
    metrics["thresholds"] = thresholds
    metrics["sources"] = {k: v for k, v in (sources or {}).items() if v is not None}
    return EvaluationResult(m.plain(metrics), table, baseline, verdicts, labels.outage, thresholds)


def _metrics(table: pd.DataFrame, verdicts: pd.DataFrame, seen: pd.DataFrame, baseline: BaselineResult | None,
             requests: RequestTimes | None, rates: pd.Series | None, replay_scores: bool) -> dict:
    abusive = table["abusive"].to_numpy()
    model = m.confusion(abusive, table["flagged"].to_numpy())
    model["blocked"] = int(table["blocked"].sum())
    out: dict = {
        "clients": {"labelled": len(table), "normal": int((~table["abusive"]).sum()),
                    "abusive": int(table["abusive"].sum()),
                    "unlabelled_with_verdicts": int((~seen.index.isin(table.index)).sum())},
        "verdicts": {"lines": len(verdicts), "clients": len(seen),
                     "simulated_lines": int(verdicts["simulated"].sum()),
                     "model_versions": sorted(set(verdicts["model_version"]) - {""})},
        "model": model,
        "time_to_detect": m.time_to_detect(table),
        "per_class": m.per_class(table),
        "false_positives": {"model": m.false_positives(table)},
        "protected_blocks": m.protected_blocks(table),
        "ranking": {**m.ranking(abusive, table["score"].to_numpy()),
                    "score_source": SCORES_FROM_REPLAY if replay_scores else SCORES_FROM_VERDICTS},
        "rate_limit": None,
        "comparison": None,
    }
    if baseline is not None:  # then requests and rates are there too
        rate = m.confusion(abusive, table["rate_flagged"].to_numpy())
        out["rate_limit"] = {"limit": baseline.limit, "window_s": baseline.window, "basis": baseline.basis,
                             "candidates": len(baseline.curve), **rate,
                             "curve": baseline.curve.to_dict(orient="records")}
        rate_classes = m.per_class(table, "rate_flagged", blocked=None)
        for kind, keys in (("abusive", ("detected", "recall")), ("normal", ("flagged", "flag_rate"))):
            for cls, entry in rate_classes[kind].items():
                out["per_class"][kind][cls].update({f"rate_limit_{k}": entry[k] for k in keys})
        out["false_positives"]["rate_limit"] = m.false_positives(table, "rate_flagged", blocked=None)
        out["comparison"] = {"f1_model_minus_rate_limit": m.difference(model["f1"], rate["f1"])}
        in_log = rates.index
        stats = requests.stats
        out["log"] = {"requests": requests.requests, "lines_read": stats.read, "lines_parsed": stats.parsed,
                      "lines_rejected": stats.rejected, "malformed": dict(stats.malformed),
                      "skipped": dict(stats.skipped),
                      "clients": len(in_log), "unlabelled_clients": int((~in_log.isin(table.index)).sum()),
                      "labelled_clients_not_in_log": int((~table.index.isin(in_log)).sum())}
    return out
