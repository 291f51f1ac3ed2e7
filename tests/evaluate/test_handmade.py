"""``detector evaluate`` against a dozen clients whose every number is counted by hand below.

T = 1_700_000_000. Outage (meta.json): T+250 .. T+350.

client        label    class           population      outage  attack      rate*  verdict lines (at, score)
10.0.0.1      normal   browser         browser         0                   3      -
10.0.0.2      normal   browser         browser         0                   3      -
10.0.0.3      normal   mobile          mobile          0                   2      -
10.0.0.4      normal   nat_office      nat_office      0                   12     throttle T+200 0.63
10.0.0.5      normal   consumer        consumer        0                   8      -
10.0.0.6      normal   health_checker  health_checker  0                   6      -
10.0.0.7      normal   browser         browser         1                   5      block T+300 0.72
203.0.113.1   abusive  reconnect_loop  attacker        0       T+100-400   20     throttle T+130 0.62, block T+160 0.75
203.0.113.2   abusive  reconnect_loop  attacker        0       T+100-400   15     throttle T+50 0.60, allow T+80 0.60,
                                                                                  throttle T+170 0.65
203.0.113.3   abusive  reconnect_loop  attacker        0       T+100-400   4      -
203.0.113.4   abusive  scanner         attacker        0       T+100-200   10     block T+110 0.80
203.0.113.5   abusive  scanner         attacker        0       T+100-200   3      throttle T+90 0.61
198.51.100.9  (not labelled)                                               1      throttle T+10 0.9

* rate = most requests in any 60 s window, by start time. Each client sends ``rate`` requests spaced
  60/rate s apart from its first start, then two more 200 s and 300 s later (never in the same window).
  The health checker instead polls every 10 s for 5 minutes: a window [t, t+60) holds 6 of them, the
  one exactly 60 s later is outside (a closed window would count 7).

Model (flagged = ever throttle/block):
  TP = .1 .2 .4 .5 = 4; FN = .3 = 1; FP = 10.0.0.4, 10.0.0.7 = 2; TN = 5.
  precision 4/6, recall 4/5, F1 = 8/(8+2+1) = 8/11, FPR = 2/7.
  recall: reconnect_loop 2/3, scanner 2/2. Normal flag rates: nat_office 1/1, browser 1/3, others 0.
  time to detect (first moment under a flag at/after attack_start): .1 130-100 = 30, .2 170-100 = 70 (its
  T+50 flag lapsed at T+80, before the attack), .4 110-100 = 10; .5 0 (its T+90 throttle still held at T+100).
  median of 0, 10, 30, 70 = 20; p90 = 30 + 0.7 * (70 - 30) = 58. reconnect_loop median 50, scanner 5.
  After the log first showed the attack (every attacker's first request starts at T+100 and, 0.25 s long,
  is logged at T+100.25): .1 29.75, .2 69.75, .4 9.75, .5 0 (flagged before); median 19.75, p90
  29.75 + 0.7 * 40 = 57.75; reconnect_loop 49.75, scanner 4.875; .3 was never flagged (no lag).
  flagged before attack: .2, .5.
  FPs: NAT 1/1 (throttle, no block), consumer 0/1, active in outage 1/1 (blocked), other 0/4
  (.1 .2 .3 .6). Blocks of NAT/consumer/outage-active normal clients: 1 (10.0.0.7).
Scores (max over verdict lines; no line = 0):
  abusive 0.75 0.65 0 0.80 0.61; normal 0.63 0.72 0 0 0 0 0.
  ROC-AUC = pairs won / 35: 0.75 beats 7, 0.65 beats 6, 0 ties 5 zeros (2.5), 0.80 beats 7, 0.61 beats 5
  = 27.5/35. AP, descending: .80 P(1/1) .75 P(2/2) .72 N .65 P(3/4) .63 N .61 P(4/6) then 0s: P(5/12)
  = 0.2 * (1 + 1 + 3/4 + 4/6 + 5/12).
Rate limit (flag rate > L), normal rates 3 3 2 12 8 6 5, abusive 20 15 4 10 3:
  L=19: TP1 FP0 -> F1 2/6   L=14: TP2 FP0 -> 4/7   L=11: TP2 FP1 -> 4/8   L=9: TP3 FP1 -> 6/9 (best)
  L=7: 6/10   L=5: 6/11   L=4: 6/12   L=3: TP4 FP4 -> 8/13   L=2: TP5 FP6 -> 10/16   L=1: 10/17
  best L=9: precision 3/4, recall 3/5, FPR 1/7; it flags the NAT office (12), not the consumer (8).
  model F1 - rate-limit F1 = 8/11 - 2/3.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from detector.evaluate import evaluate_files, format_summary, write_report

from ..conftest import nginx_line

T = 1_700_000_000.0
HEADER = "client,label,class,population,attack_start,attack_end,active_in_outage\n"

# client: (label, class, population, active_in_outage, attack_start, attack_end, rate, first start)
CLIENTS = {
    "10.0.0.1": ("normal", "browser", "browser", 0, None, None, 3, T + 0),
    "10.0.0.2": ("normal", "browser", "browser", 0, None, None, 3, T + 20),
    "10.0.0.3": ("normal", "mobile", "mobile", 0, None, None, 2, T + 5),
    "10.0.0.4": ("normal", "nat_office", "nat_office", 0, None, None, 12, T + 30),
    "10.0.0.5": ("normal", "consumer", "consumer", 0, None, None, 8, T + 40),
    "10.0.0.6": ("normal", "health_checker", "health_checker", 0, None, None, None, T + 0),
    "10.0.0.7": ("normal", "browser", "browser", 1, None, None, 5, T + 260),
    "203.0.113.1": ("abusive", "reconnect_loop", "attacker", 0, T + 100, T + 400, 20, T + 100),
    "203.0.113.2": ("abusive", "reconnect_loop", "attacker", 0, T + 100, T + 400, 15, T + 100),
    "203.0.113.3": ("abusive", "reconnect_loop", "attacker", 0, T + 100, T + 400, 4, T + 100),
    "203.0.113.4": ("abusive", "scanner", "attacker", 0, T + 100, T + 200, 10, T + 100),
    "203.0.113.5": ("abusive", "scanner", "attacker", 0, T + 100, T + 200, 3, T + 100),
}

VERDICTS = [  # (client, verdict, at offset, score, ttl)
    ("198.51.100.9", "throttle", 10, 0.9, 300),
    ("203.0.113.2", "throttle", 50, 0.60, 30),
    ("203.0.113.2", "allow", 80, 0.60, None),
    ("203.0.113.5", "throttle", 90, 0.61, 300),
    ("203.0.113.4", "block", 110, 0.80, 900),
    ("203.0.113.1", "throttle", 130, 0.62, 300),
    ("203.0.113.1", "block", 160, 0.75, 900),
    ("203.0.113.2", "throttle", 170, 0.65, 300),
    ("10.0.0.4", "throttle", 200, 0.63, 300),
    ("10.0.0.7", "block", 300, 0.72, 900),
]


def request_starts(rate: int | None, first: float) -> list[float]:
    if rate is None:  # health checker: every 10 s for 5 minutes
        return [first + 10 * k for k in range(30)]
    return [first + k * 60.0 / rate for k in range(rate)] + [first + 200, first + 300]


@pytest.fixture
def scenario(tmp_path: Path) -> dict[str, Path]:
    lines = []
    for client, row in CLIENTS.items():
        duration = 25.0 if row[1] == "browser" else 0.25
        for start in request_starts(row[6], row[7]):
            lines.append(nginx_line(client, start + duration, duration))
    lines.append(nginx_line("198.51.100.9", T + 10, 0.1))
    lines.sort(key=lambda b: orjson.loads(b)["msec"])
    lines.insert(5, b"{not json")
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(lines) + b"\n")

    labels = tmp_path / "labels.csv"
    labels.write_text(HEADER + "".join(
        f"{c},{r[0]},{r[1]},{r[2]},{'' if r[4] is None else r[4]},{'' if r[5] is None else r[5]},{r[3]}\n"
        for c, r in CLIENTS.items()))
    (tmp_path / "meta.json").write_text(json.dumps({"outage": {"start": T + 250, "end": T + 350}, "seed": 1}))

    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_bytes(b"".join(orjson.dumps({
        "client": c, "verdict": v, "score": s, "at": T + at, "until": None if ttl is None else T + at + ttl,
        "reasons": ["hand-made"], "model_version": "test.1"}) + b"\n" for c, v, at, s, ttl in VERDICTS))
    return {"log": log, "labels": labels, "verdicts": verdicts}


def approx(x: float):
    return pytest.approx(x, abs=1e-9)


def test_every_number_matches_the_hand_count(scenario):
    result = evaluate_files(scenario["labels"], scenario["verdicts"], [scenario["log"]],
                            progress=lambda done, total: None)
    mx = result.metrics

    assert mx["clients"] == {"labelled": 12, "normal": 7, "abusive": 5, "unlabelled_with_verdicts": 1}
    model = mx["model"]
    assert (model["tp"], model["fp"], model["fn"], model["tn"]) == (4, 2, 1, 5)
    assert model["precision"] == approx(4 / 6)
    assert model["recall"] == approx(4 / 5)
    assert model["f1"] == approx(8 / 11)
    assert model["fpr"] == approx(2 / 7)
    assert model["blocked"] == 3

    attacks = mx["per_class"]["abusive"]
    assert list(attacks) == ["reconnect_loop", "scanner"]
    assert (attacks["reconnect_loop"]["clients"], attacks["reconnect_loop"]["detected"]) == (3, 2)
    assert attacks["reconnect_loop"]["recall"] == approx(2 / 3)
    assert attacks["scanner"]["recall"] == approx(1.0)
    assert attacks["reconnect_loop"]["ttd_median_s"] == approx(50)
    assert attacks["scanner"]["ttd_median_s"] == approx(5)
    assert attacks["scanner"]["flagged_before_attack"] == 1
    normal = mx["per_class"]["normal"]
    assert list(normal) == ["browser", "mobile", "consumer", "nat_office", "health_checker"]
    assert normal["nat_office"]["flag_rate"] == approx(1.0)
    assert normal["browser"]["flag_rate"] == approx(1 / 3)
    assert normal["consumer"]["flag_rate"] == approx(0.0)

    ttd = mx["time_to_detect"]
    assert ttd["detected_in_attack"] == 4
    assert ttd["median_s"] == approx(20)
    assert ttd["p90_s"] == approx(58)
    assert ttd["flagged_before_attack"] == 2
    assert ttd["flagged_before_attack_clients"] == ["203.0.113.2", "203.0.113.5"]
    assert (ttd["lag_median_s"], ttd["lag_p90_s"]) == (approx(19.75), approx(57.75))
    assert attacks["reconnect_loop"]["lag_median_s"] == approx(49.75)
    assert attacks["scanner"]["lag_median_s"] == approx(4.875)
    assert result.clients.loc["203.0.113.3", "first_seen"] == approx(T + 100.25)

    fps = mx["false_positives"]["model"]
    assert {g: (e["clients"], e["flagged"], e["blocked"]) for g, e in fps.items()} == {
        "nat_office": (1, 1, 0), "consumer": (1, 0, 0), "active_in_outage": (1, 1, 1), "other": (4, 0, 0)}
    assert fps["nat_office"]["flagged_clients"] == ["10.0.0.4"]
    assert mx["protected_blocks"] == {"count": 1, "clients": ["10.0.0.7"]}

    assert mx["ranking"]["roc_auc"] == approx(27.5 / 35)
    assert mx["ranking"]["average_precision"] == approx(0.2 * (1 + 1 + 3 / 4 + 4 / 6 + 5 / 12))
    assert "verdict lines" in mx["ranking"]["score_source"]

    rates = result.clients["max_rate"].to_dict()
    assert rates == {"10.0.0.1": 3, "10.0.0.2": 3, "10.0.0.3": 2, "10.0.0.4": 12, "10.0.0.5": 8, "10.0.0.6": 6,
                     "10.0.0.7": 5, "203.0.113.1": 20, "203.0.113.2": 15, "203.0.113.3": 4, "203.0.113.4": 10,
                     "203.0.113.5": 3}
    rl = mx["rate_limit"]
    assert rl["limit"] == 9
    assert (rl["tp"], rl["fp"], rl["fn"], rl["tn"]) == (3, 1, 2, 6)
    assert rl["f1"] == approx(6 / 9)
    assert rl["precision"] == approx(3 / 4)
    assert rl["recall"] == approx(3 / 5)
    assert rl["fpr"] == approx(1 / 7)
    assert rl["basis"] == "request start time"
    curve = result.baseline.curve.set_index("limit")["f1"]
    assert {k: curve[k] for k in (19, 14, 11, 9, 7, 3, 2, 1)} == pytest.approx(
        {19: 2 / 6, 14: 4 / 7, 11: 4 / 8, 9: 6 / 9, 7: 6 / 10, 3: 8 / 13, 2: 10 / 16, 1: 10 / 17})
    rate_fps = mx["false_positives"]["rate_limit"]
    assert (rate_fps["nat_office"]["flagged"], rate_fps["consumer"]["flagged"]) == (1, 0)
    assert attacks["reconnect_loop"]["rate_limit_recall"] == approx(2 / 3)
    assert attacks["scanner"]["rate_limit_recall"] == approx(1 / 2)
    assert mx["comparison"]["f1_model_minus_rate_limit"] == approx(8 / 11 - 2 / 3)

    assert mx["log"]["lines_rejected"] == 1
    assert mx["log"]["unlabelled_clients"] == 1
    assert mx["outage"] == {"start": T + 250, "end": T + 350}
    assert result.outage == (T + 250, T + 350)


def test_summary_and_report_carry_the_headline_numbers(scenario, tmp_path: Path):
    result = evaluate_files(scenario["labels"], scenario["verdicts"], [scenario["log"]],
                            progress=lambda done, total: None)
    summary = format_summary(result)
    assert "0.667" in summary and "0.727" in summary  # model precision, F1
    assert "rate limit (> 9 req / 60 s)" in summary
    assert "+0.061" in summary  # 8/11 - 2/3

    out = tmp_path / "report"
    path = write_report(result, out)
    assert path == out / "report.md"
    text = path.read_text()
    for number in ("0.667", "0.800", "0.727", "0.2857", "0.750", "0.600", "+0.061", "median 20 s", "p90 58 s"):
        assert number in text, number
    assert "**1** — the requirement is zero: 10.0.0.7" in text
    for name in ("scores", "precision_recall", "timeline"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name}.png)" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["f1"] == approx(8 / 11)
    assert metrics["rate_limit"]["limit"] == 9
    assert (out / "clients.csv").read_text().count("\n") == 13

    html = write_report(result, out, fmt="html").read_text()
    assert html.startswith("<!doctype html>") and "<td>0.727</td>" in html and 'src="timeline.png"' in html


def test_without_a_log_there_is_no_baseline(scenario):
    result = evaluate_files(scenario["labels"], scenario["verdicts"])
    assert result.baseline is None and result.metrics["rate_limit"] is None
    assert result.metrics["model"]["f1"] == approx(8 / 11)
    assert "rate limit" not in format_summary(result)


def test_thresholds_come_from_a_model_card(scenario, tmp_path: Path):
    artifact = tmp_path / "models" / "test.1"
    artifact.mkdir(parents=True)
    (artifact / "card.json").write_text(json.dumps({"version": "test.1", "thresholds": {
        "throttle": 0.6, "block": 0.7, "throttle_fpr": 0.001, "block_fpr": 0.0001}}))
    result = evaluate_files(scenario["labels"], scenario["verdicts"], model_path=artifact)
    assert result.thresholds == {"throttle": 0.6, "block": 0.7}
    assert result.metrics["thresholds"] == {"throttle": 0.6, "block": 0.7}
