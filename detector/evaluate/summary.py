"""The short text the CLI prints after an evaluation."""

from __future__ import annotations

from detector.evaluate import formatting as f
from detector.evaluate import tables


def format_summary(result) -> str:
    """Headline table, per-class recall, false positives and ranking quality, as plain text."""
    mx = result.metrics
    c = mx["clients"]
    parts = [f"{c['labelled']} labelled clients: {c['normal']} normal, {c['abusive']} abusive; "
             f"{mx['verdicts']['lines']} verdict lines",
             "", tables.text(tables.headline(mx))]
    if mx["comparison"]:
        parts.append(f"model F1 - rate-limit F1: {f.signed(mx['comparison']['f1_model_minus_rate_limit'])}")
    ttd = mx["time_to_detect"]
    parts.append(f"time to detect (from attack start until under a verdict): median {f.seconds(ttd['median_s'])}, "
                 f"p90 {f.seconds(ttd['p90_s'])} over {ttd['detected_in_attack']} attackers; "
                 f"{ttd['flagged_before_attack']} flagged before their attack started")
    if ttd.get("lag_median_s") is not None:
        parts.append(f"after the log first showed the attack (a held poll is logged when it ends): median "
                     f"{f.seconds(ttd['lag_median_s'])}, p90 {f.seconds(ttd['lag_p90_s'])}")
    if mx["per_class"]["abusive"]:
        parts += ["", tables.text(tables.attack_classes(mx))]
    parts += ["", tables.text(tables.false_positives(mx))]
    blocks = mx["protected_blocks"]
    parts.append(f"blocks of NAT-office, consumer or outage-active normal clients: {blocks['count']}"
                 + (" (must be 0: " + ", ".join(blocks["clients"][:5])
                    + (", ..." if blocks["count"] > 5 else "") + ")" if blocks["count"] else ""))
    rk = mx["ranking"]
    parts.append(f"ROC-AUC {f.ratio(rk['roc_auc'])}, average precision {f.ratio(rk['average_precision'])} "
                 f"(scores: {rk['score_source']})")
    return "\n".join(parts)
