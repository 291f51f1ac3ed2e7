"""A failure that hits a share of the clients only (a deploy that breaks one endpoint, one backend of
several down), with no abuse at all: every verdict is a false positive. A benchmark that prints numbers,
not a test, and never used to fit.

    python benchmarks/partial_outage.py [--clients 2000] [--failing 40] [--minutes 30] [--seed 302]
                                        [--model models/current] [--out DIR]

The simulator's outage takes every client down at once. Here two normal simulations are laid over each
other: ``--clients`` clients whose outage comes later, and ``--failing`` clients (seed + 5) whose log is
moved earlier so that their outage ends a minute before the others' starts. During the first outage
only the ``--failing`` clients fail, retrying as the simulator's clients retry in any outage, while
everyone else is served; the share failing is about ``failing / (clients + failing)``, under
``policy.incident_share``, so the policy's incident rule does not apply. The merged log (nginx JSON with
start lines) is evaluated with ``detector evaluate``; the labels say every client is normal.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import re
import tempfile
from pathlib import Path

from detector.evaluate import evaluate_log, format_summary, write_report
from detector.evaluate.labels import COLUMNS
from detector.sim import simulate

MSEC = re.compile(rb'"msec":"([0-9.]+)"')


def _lines(path: Path, shift: float):
    """(time, line) of a start-line log with every ``msec`` moved by ``shift`` seconds."""
    with open(path, "rb") as f:
        for line in f:
            m = MSEC.search(line)
            t = float(m.group(1)) + shift
            yield t, (line[:m.start(1)] + f"{t:.3f}".encode() + line[m.end(1):]) if shift else line


def build(out: Path, clients: int, failing: int, minutes: float, seed: int) -> tuple[Path, Path, float]:
    """Write ``out/access_starts.log`` and ``out/labels.csv``; return them and the share failing."""
    rest, few = out / "rest", out / "few"
    simulate(rest, minutes=minutes, seed=seed, clients=clients, attacks=False, nginx_starts=True)
    simulate(few, minutes=minutes, seed=seed + 5, clients=failing, attacks=False, nginx_starts=True)
    outage = {d: json.loads((d / "meta.json").read_text())["outage"] for d in (rest, few)}
    shift = outage[rest]["start"] - outage[few]["end"] - 60.0  # the few's outage ends a minute before
    log = out / "access_starts.log"
    with open(log, "wb") as o:
        for _t, line in heapq.merge(_lines(few / "access_starts.log", shift), _lines(rest / "access_starts.log", 0.0),
                                    key=lambda x: x[0]):
            o.write(line)
    rows = []
    for d in (rest, few):
        with open(d / "labels.csv", newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    labels = out / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "meta.json").write_bytes((rest / "meta.json").read_bytes())
    return log, labels, failing / (clients + failing)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=2000, help="clients served through the first outage")
    p.add_argument("--failing", type=int, default=40, help="clients that fail in it")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--seed", type=int, default=302)
    p.add_argument("--model", default="models/current")
    p.add_argument("--out", default=None, help="folder for the log, labels and report (default: a temporary one)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        log, labels, share = build(out, args.clients, args.failing, args.minutes, args.seed)
        result = evaluate_log([log], labels, args.model)
        print(f"\n== {args.failing} of {args.clients + args.failing} clients failing alone "
              f"(about {share:.1%}): {log}\n{format_summary(result)}", flush=True)
        if args.out:
            print(f"report: {write_report(result, out / 'report')}")


if __name__ == "__main__":
    main()
