"""The tables a person reads, as (headers, rows) of strings: the text summary and the report render them."""

from __future__ import annotations

from detector.evaluate import formatting as f
from detector.evaluate.metrics import FP_GROUPS

Table = tuple[list[str], list[list[str]]]


def rate_limit_name(metrics: dict) -> str:
    rl = metrics["rate_limit"]
    return f"rate limit (> {rl['limit']} req / {rl['window_s']:g} s)"


def headline(metrics: dict) -> Table:
    """Model vs the tuned rate limit: precision, recall, F1, FPR and the confusion counts."""
    headers = ["", "precision", "recall", "F1", "FPR", "TP", "FP", "FN", "TN"]
    rows = []
    for name, m in (("model verdicts", metrics["model"]),
                    (rate_limit_name(metrics) if metrics["rate_limit"] else None, metrics["rate_limit"])):
        if m is None:
            continue
        rows.append([name, f.ratio(m["precision"]), f.ratio(m["recall"]), f.ratio(m["f1"]), f.ratio(m["fpr"], 4),
                     str(m["tp"]), str(m["fp"]), str(m["fn"]), str(m["tn"])])
    return headers, rows


def attack_classes(metrics: dict) -> Table:
    """Recall per attack class, time to detect, and what the rate limit catches."""
    rate = metrics["rate_limit"] is not None
    classes = metrics["per_class"]["abusive"]
    lag = any("lag_median_s" in e for e in classes.values())
    headers = ["attack class", "clients", "recall", "blocked", "median TTD", "p90 TTD"]
    headers += ["median after first line"] if lag else []
    headers += ["flagged before attack"] + (["rate-limit recall"] if rate else [])
    rows = []
    for cls, e in classes.items():
        row = [cls, str(e["clients"]), f"{f.ratio(e['recall'], 2)} ({e['detected']})", str(e["blocked"]),
               f.seconds(e["ttd_median_s"]), f.seconds(e["ttd_p90_s"])]
        row += [f.seconds(e.get("lag_median_s"))] if lag else []
        rows.append(row + [str(e["flagged_before_attack"])] + ([f.ratio(e["rate_limit_recall"], 2)] if rate else []))
    return headers, rows


def normal_classes(metrics: dict) -> Table:
    """Flag rate per class of normal clients."""
    rate = metrics["rate_limit"] is not None
    headers = ["normal class", "clients", "flagged", "blocked"] + (["rate-limit flagged"] if rate else [])
    rows = []
    for cls, e in metrics["per_class"]["normal"].items():
        row = [cls, str(e["clients"]), f.count_of(e["flagged"], e["clients"]), str(e["blocked"])]
        if rate:
            row.append(f.count_of(e["rate_limit_flagged"], e["clients"]))
        rows.append(row)
    return headers, rows


def false_positives(metrics: dict) -> Table:
    """False positives of the model (and the rate limit) by population."""
    model = metrics["false_positives"]["model"]
    rate = metrics["false_positives"].get("rate_limit")
    headers = ["normal clients", "clients", "model FPs", "model blocks"] + (["rate-limit FPs"] if rate else [])
    rows = []
    for group in FP_GROUPS:
        e = model[group]
        row = [f.label(group), str(e["clients"]), f.count_of(e["flagged"], e["clients"]), str(e["blocked"])]
        if rate:
            row.append(f.count_of(rate[group]["flagged"], rate[group]["clients"]))
        rows.append(row)
    return headers, rows


def text(table: Table) -> str:
    """A plain, aligned text table.

    >>> print(text((["a", "bb"], [["x", "1"], ["yyy", "22"]])))
    a    bb
    x     1
    yyy  22
    """
    headers, rows = table
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join(line(r).rstrip() for r in [headers, *rows])
