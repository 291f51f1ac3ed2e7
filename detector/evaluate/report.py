"""The evaluation report: ``report.md`` or ``report.html`` with PNG figures, ``metrics.json`` (every
number) and ``clients.csv`` (the per-client table).

The report is built once as a list of blocks (heading, paragraph, list, table, image) and rendered to
Markdown or HTML, so both say the same thing.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from detector.evaluate import formatting as f
from detector.evaluate import tables
from detector.evaluate.figures import draw_all

FORMATS = ("md", "html")
Block = tuple  # ("h1"|"h2"|"p", text) | ("list", [text]) | ("table", Table) | ("img", alt, file name)


def write_report(result, out_dir: str | Path, fmt: str = "md") -> Path:
    """Write the report, its figures, ``metrics.json`` and ``clients.csv`` into ``out_dir``."""
    if fmt not in FORMATS:
        raise ValueError(f"report format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = draw_all(result, out)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, allow_nan=False) + "\n")
    result.clients.to_csv(out / "clients.csv", index_label="client")
    blocks = build(result, {name: p.name for name, p in figures.items()})
    path = out / f"report.{fmt}"
    path.write_text(render_md(blocks) if fmt == "md" else render_html(blocks), encoding="utf-8")
    return path


def build(result, figures: dict[str, str]) -> list[Block]:
    mx = result.metrics
    c = mx["clients"]
    blocks: list[Block] = [
        ("h1", "Detector evaluation"),
        ("p", f"{c['labelled']} labelled clients ({c['normal']} normal, {c['abusive']} abusive); "
              f"{mx['verdicts']['lines']} verdict lines for {mx['verdicts']['clients']} clients"
              + (f", {c['unlabelled_with_verdicts']} of them not in the labels" if c["unlabelled_with_verdicts"]
                 else "") + "."),
        ("h2", "Model against a tuned fixed rate limit"),
        ("table", tables.headline(mx)),
    ]
    verdict_list = []
    if mx["comparison"]:
        rl = mx["rate_limit"]
        gain = f.signed(mx["comparison"]["f1_model_minus_rate_limit"])
        verdict_list.append(f"Model F1 minus rate-limit F1: **{gain}**. The rate limit flags a client with more than {rl['limit']} requests in any "
                            f"{rl['window_s']:g} s window, the best of {rl['candidates']} limits on this very "
                            f"log (an upper bound for any fixed limit).")
    blocks_count = mx["protected_blocks"]["count"]
    verdict_list.append(
        f"Blocks of NAT-office, consumer or outage-active normal clients: **{blocks_count}** "
        + ("(requirement: zero)." if not blocks_count else
           "— the requirement is zero: " + ", ".join(mx["protected_blocks"]["clients"]) + "."))
    rk = mx["ranking"]
    verdict_list.append(f"Ranking by per-client score: ROC-AUC {f.ratio(rk['roc_auc'])}, average precision "
                        f"{f.ratio(rk['average_precision'])}.")
    blocks.append(("list", verdict_list))

    ttd = mx["time_to_detect"]
    blocks += [
        ("h2", "Attack classes"),
        ("p", f"Time to detect (TTD) runs from the attack's start until the client is under a throttle or "
              f"block (0 when one reached before, such as its network's, still held then): median "
              f"{f.seconds(ttd['median_s'])}, p90 {f.seconds(ttd['p90_s'])} over "
              f"{ttd['detected_in_attack']} attackers. {ttd['flagged_before_attack']} attackers were flagged "
              "before their attack started."
              + (f" Counted from when the log first showed the attack (its first line, written when a request "
                 f"that started in the attack ended: a poll held 25 s shows 25 s after it began): median "
                 f"{f.seconds(ttd['lag_median_s'])}, p90 {f.seconds(ttd['lag_p90_s'])}."
                 if ttd.get("lag_median_s") is not None else "")),
        ("table", tables.attack_classes(mx)),
        ("h2", "False positives"),
        ("table", tables.false_positives(mx)),
        ("p", "A normal client can fall in several groups (a NAT office active in the outage); "
              "\"other\" is in none of them."),
        ("table", tables.normal_classes(mx)),
    ]
    fp_clients = sorted(result.clients.index[~result.clients["abusive"] & result.clients["flagged"]])
    if fp_clients:
        shown = ", ".join(fp_clients[:30]) + (f" and {len(fp_clients) - 30} more" if len(fp_clients) > 30 else "")
        blocks.append(("p", f"Flagged normal clients: {shown}."))

    blocks.append(("h2", "Figures"))
    captions = {
        "scores": "Per-client score by class" + (" (dashed: throttle and block thresholds)"
                                                 if result.thresholds else ""),
        "precision_recall": "Precision-recall of per-client scores; dot: the model's verdicts, "
                            "square: the tuned rate limit",
        "timeline": "Verdicts against attack windows (grey), throttle orange, block red, outage shaded",
    }
    for name, caption in captions.items():
        if name in figures:
            blocks += [("p", caption), ("img", name, figures[name])]

    notes = [f"Scores for ROC-AUC/AP: {rk['score_source']}.",
             "A client is flagged if it ever got a throttle or block verdict; precision, recall and F1 count "
             "clients, and the false-positive rate is over normal clients."]
    if mx["rate_limit"]:
        notes.append(f"Rate-limit windows count requests by {mx['rate_limit']['basis']}, half-open "
                     f"[t, t + {mx['rate_limit']['window_s']:g} s), one per request.")
    if mx.get("log"):
        lg = mx["log"]
        notes.append(f"Log: {lg['lines_read']} lines read, {lg['lines_parsed']} parsed, {lg['lines_rejected']} "
                     f"rejected, {sum(lg.get('skipped', {}).values())} skipped; {lg['clients']} clients, {lg['unlabelled_clients']} not in the labels, "
                     f"{lg['labelled_clients_not_in_log']} labelled clients absent.")
    if mx["verdicts"]["simulated_lines"]:
        notes.append(f"{mx['verdicts']['simulated_lines']} verdict lines were shadow-mode (simulated); "
                     "they count like the others.")
    notes.append("Every number is in metrics.json; the per-client table is clients.csv.")
    blocks += [("h2", "Notes"), ("list", notes)]
    return blocks


def render_md(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}")
        elif kind == "h2":
            out.append(f"## {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            headers, rows = block[1]
            cell = lambda s: s.replace("|", "\\|")  # noqa: E731
            out.append("\n".join(["| " + " | ".join(cell(h) for h in headers) + " |",
                                  "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
                                 + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]))
        elif kind == "img":
            out.append(f"![{block[1]}]({block[2]})")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[Block]) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            headers, rows = block[1]
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        elif kind == "img":
            body.append(f'<img src="{html.escape(block[2])}" alt="{html.escape(block[1])}">')
    style = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Detector evaluation</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
