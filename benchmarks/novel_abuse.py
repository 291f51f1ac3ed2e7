"""Kinds of abuse the simulator never makes, added to a normal simulated log, then ``detector evaluate``:
a check of how the model generalises. A benchmark that prints numbers, not a test, and never used to fit.

    python benchmarks/novel_abuse.py [--seed 77] [--minutes 20] [--actors 4] [--model models/current]
                                     [--out DIR] [--starts]

It simulates ``--minutes`` of normal traffic (``detector simulate --no-attacks``), adds ``--actors`` actors
of each kind below on addresses of their own, each from a random moment for 2 to 6 minutes, merges their
lines into the nginx-json log by time, labels them ``abusive`` with the kind as their class, and prints
the evaluation table (report and figures in ``DIR/report``). ``--starts`` also writes every request's
start line, as deploy/nginx's template has nginx write it, and evaluates that log.

* ``token_probe``: the poll endpoint with a bad token, 401 at once, 1 to 4 a second;
* ``hold_cheat``: 8 to 16 polls held at once, each dropped (499) after 2 to 5 s and opened again;
* ``enumerate``: ``/v1/channels/<n>`` counted upwards, 403 or 404 at once, every 0.5 to 2 s;
* ``metronome``: a short poll (``wait=0``, 204 at once) exactly every 1 or 2 s;
* ``file_loop``: one 190 kB file fetched over and over, 1 to 3 a second;
* ``agent_churn``: polls answered at once, a new browser user agent on every one, 1 to 3 a second;
* ``write_flood``: ``POST /v1/messages``, 2 to 8 a second, 201;
* ``blank_scraper``: no user agent, ``/v1/history?page=<n>`` upwards, 0.5 to 3 pages a second.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import orjson

from detector.evaluate import evaluate_log, format_summary, write_report
from detector.evaluate.labels import COLUMNS
from detector.ingest.formats import parse_lines
from detector.sim import simulate
from detector.sim.recorder import METHODS
from detector.sim.writer import write_nginx_starts

BROWSERS = [f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.0 "
            "Safari/537.36" for v in range(110, 132) for b in range(4000, 6400, 300)]
SCRIPT = "python-httpx/0.27.0"


def _times(rng: np.random.Generator, t0: float, t1: float, lo: float, hi: float) -> np.ndarray:
    """Request starts from ``t0`` to ``t1`` at a pace drawn once between ``lo`` and ``hi`` per second."""
    rate = rng.uniform(lo, hi)
    gaps = rng.exponential(1.0 / rate, int((t1 - t0) * rate * 2) + 10)
    t = t0 + np.cumsum(gaps)
    return t[t < t1]


def actor(kind: str, rng: np.random.Generator, t0: float, t1: float) -> list[dict]:
    """The requests of one actor of ``kind`` from ``t0`` to ``t1``: dicts of start, duration, method, uri,
    status, bytes, ua."""
    out = []

    def add(start, dur, uri, status, nbytes, ua, method="GET"):
        out.append(dict(start=float(start), dur=float(dur), method=method, uri=uri, status=int(status),
                        bytes=int(nbytes), ua=ua))

    if kind == "token_probe":
        for i, s in enumerate(_times(rng, t0, t1, 1, 4)):
            add(s, rng.uniform(0.002, 0.01), f"/v1/poll?channel=room-{rng.integers(3000)}&token={rng.bytes(6).hex()}",
                401, 60, SCRIPT)
    elif kind == "hold_cheat":
        for lane in range(int(rng.integers(8, 17))):
            s = t0 + rng.uniform(0, 2)
            while s < t1:
                d = rng.uniform(2, 5)
                add(s, d, f"/v1/poll?channel=room-7&cursor={int(s)}", 499, 0, SCRIPT)
                s += d + rng.uniform(0.0, 0.05)
    elif kind == "enumerate":
        n = int(rng.integers(100, 5000))
        for i, s in enumerate(_times(rng, t0, t1, 0.5, 2)):
            add(s, rng.uniform(0.003, 0.02), f"/v1/channels/{n + i}", 403 if rng.random() < 0.5 else 404, 41, SCRIPT)
    elif kind == "metronome":
        period = float(rng.choice([1.0, 2.0]))
        for s in np.arange(t0, t1, period):
            add(s, 0.004, "/v1/poll?channel=room-12&cursor=88&wait=0", 204, 0, SCRIPT)
    elif kind == "file_loop":
        for s in _times(rng, t0, t1, 1, 3):
            add(s, rng.uniform(0.05, 0.2), "/static/app.bundle.js", 200, 190_000, BROWSERS[0])
    elif kind == "agent_churn":
        for s in _times(rng, t0, t1, 1, 3):
            add(s, rng.uniform(0.01, 0.05), f"/v1/poll?channel=room-{rng.integers(3000)}&cursor=1", 200, 700,
                BROWSERS[int(rng.integers(len(BROWSERS)))])
    elif kind == "write_flood":
        for s in _times(rng, t0, t1, 2, 8):
            add(s, rng.uniform(0.01, 0.06), "/v1/messages", 201, 120, SCRIPT, method="POST")
    elif kind == "blank_scraper":
        for i, s in enumerate(_times(rng, t0, t1, 0.5, 3)):
            add(s, rng.uniform(0.02, 0.1), f"/v1/history?page={i + 1}", 200, int(rng.integers(4000, 12000)), "")
    else:
        raise ValueError(kind)
    return out


KINDS = ("token_probe", "hold_cheat", "enumerate", "metronome", "file_loop", "agent_churn", "write_flood",
         "blank_scraper")


def _line(addr: str, r: dict, rid: int) -> bytes:
    end = r["start"] + r["dur"]
    return orjson.dumps({
        "msec": f"{end:.3f}", "remote_addr": addr, "request_method": r["method"], "request_uri": r["uri"],
        "status": str(r["status"]), "body_bytes_sent": str(r["bytes"]), "request_time": f"{r['dur']:.3f}",
        "http_user_agent": r["ua"], "request_id": f"{rid:032x}"}) + b"\n"


def build(out: Path, seed: int, minutes: float, actors: int) -> tuple[Path, Path]:
    """Write ``out/access.log`` (normal traffic and the actors) and ``out/labels.csv``; return their paths."""
    sim = out / "normal"
    simulate(sim, minutes=minutes, seed=seed, attacks=False)
    normal = (sim / "access.log").read_bytes().splitlines(keepends=True)
    ends = parse_lines(normal).events["end"].to_numpy()
    t_first, t_last = float(ends.min()), float(ends.max())
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(77,)))
    extra, rows = [], []
    for kind in KINDS:
        for _ in range(actors):
            addr = f"{rng.integers(11, 99)}.{rng.integers(256)}.{rng.integers(256)}.{rng.integers(1, 255)}"
            length = rng.uniform(120, 360)
            t0 = rng.uniform(t_first + 60, max(t_first + 61, t_last - length))
            reqs = actor(kind, rng, t0, min(t0 + length, t_last))
            extra += [(r["start"] + r["dur"], _line(addr, r, len(extra) + i)) for i, r in enumerate(reqs)]
            rows.append(dict(client=addr, label="abusive", **{"class": kind}, population="abusive",
                             attack_start=f"{t0:.3f}", attack_end=f"{min(t0 + length, t_last):.3f}",
                             active_in_outage=0))
    merged = sorted([(e, line) for e, line in zip(ends.tolist(), normal)] + extra, key=lambda x: x[0])
    log = out / "access.log"
    log.write_bytes(b"".join(line for _, line in merged))
    labels = out / "labels.csv"
    with open(sim / "labels.csv", newline="", encoding="utf-8") as f:
        normal_rows = list(csv.DictReader(f))
    with open(labels, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        w.writeheader()
        w.writerows(normal_rows + rows)
    if (sim / "meta.json").exists():
        (out / "meta.json").write_bytes((sim / "meta.json").read_bytes())
    return log, labels


def with_starts(log: Path) -> Path:
    """``log`` with a start line before each request, as deploy/nginx's template has nginx write it."""
    ev = parse_lines(log.read_bytes().splitlines()).events
    names = sorted(set(ev["client"])), sorted(set(ev["ua"]))
    addr = {a: i for i, a in enumerate(names[0])}
    agents = {a: i for i, a in enumerate(names[1])}
    uri = (ev["path"] + np.where(ev["query"] != "", "?" + ev["query"], "")).to_numpy(dtype=object)
    methods = {m: i for i, m in enumerate(METHODS)}
    path = log.with_name("access_starts.log")
    write_nginx_starts(path, log, end_ms=np.round(ev["end"].to_numpy() * 1000).astype(np.int64),
                       dur_ms=np.round(ev["duration"].to_numpy() * 1000).astype(np.int64),
                       client=ev["client"].map(addr).to_numpy(), addrs=names[0],
                       method=ev["method"].map(methods).to_numpy(), uri=uri, ua=ev["ua"].map(agents).to_numpy(),
                       agents=names[1], request_ids=b"0" * 32 * len(ev))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=77)
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--actors", type=int, default=4, help="actors of each kind")
    p.add_argument("--model", default="models/current")
    p.add_argument("--out", default=None, help="folder for the log, labels and report (default: a temporary one)")
    p.add_argument("--starts", action="store_true", help="also evaluate the log with nginx's start lines")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        log, labels = build(out, args.seed, args.minutes, args.actors)
        logs = [("nginx-json", log)] + ([("nginx-json with start lines", with_starts(log))] if args.starts else [])
        for name, path in logs:
            result = evaluate_log([path], labels, args.model)
            print(f"\n== {name}: {path}\n{format_summary(result)}", flush=True)
            if args.out:
                print(f"report: {write_report(result, out / ('report' if path == log else 'report_starts'))}")


if __name__ == "__main__":
    main()
