"""Ingest throughput: lines per second through parsing, the feature stream, and (with a model) the whole
pipeline, on a simulated nginx-json log (or its Envoy form, a start record per request as well, with
``--format envoy-json``; or, with ``--format nginx-starts``, the nginx log with a start line per request as
deploy/nginx's template writes it). A benchmark that prints numbers, not a test.

    python benchmarks/ingest_throughput.py [--minutes 10] [--clients 2000] [--batch 5000] [--model models/current]
                                           [--format nginx-json|envoy-json|nginx-starts]

Each stage is timed over the same batches (``--batch`` lines, as the live consumer pushes them); the
simulated log is written to a temporary folder first and read into memory, so disk speed is not measured.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from detector.config import load_settings
from detector.features.stream import FeatureStream
from detector.ingest.formats import parse_lines
from detector.sim import simulate


#: --format: the file ``detector simulate`` writes it to, and the parser that reads it.
LOGS = {"nginx-json": ("access.log", "nginx-json"), "envoy-json": ("access_envoy.log", "envoy-json"),
        "nginx-starts": ("access_starts.log", "nginx-json")}


def timed(label: str, lines: int, fn) -> float:
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    print(f"{label:<38} {lines / seconds:>12,.0f} lines/s   ({seconds:6.2f} s)", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--batch", type=int, default=5000, help="lines per batch (ingest.batch_lines)")
    p.add_argument("--model", default=None, help="also time the whole pipeline with this model artifact")
    p.add_argument("--format", choices=tuple(LOGS), default="nginx-json")
    args = p.parse_args()
    log, fmt = LOGS[args.format]

    folder = Path(tempfile.mkdtemp(prefix="detector-bench-"))
    t0 = time.perf_counter()
    summary = simulate(folder, minutes=args.minutes, seed=args.seed, clients=args.clients,
                       envoy=args.format == "envoy-json", nginx_starts=args.format == "nginx-starts")
    raw = (folder / log).read_bytes().splitlines()
    n = len(raw)
    print(f"simulated {summary.lines:,} requests, {n:,} {args.format} lines ({args.minutes:g} min, {summary.clients:,} clients) in "
          f"{time.perf_counter() - t0:.1f} s; batches of {args.batch:,} lines", flush=True)
    chunks = [raw[i:i + args.batch] for i in range(0, n, args.batch)]

    parsed = timed(f"parse ({fmt})", n, lambda: [parse_lines(c, fmt) for c in chunks])

    cfg = load_settings(None).features  # the defaults detector serve runs with

    held = [0]  # the most events the stream held after a batch: what its memory grows with

    def features(batches):
        stream = FeatureStream.configured(cfg, live=True)
        rows = 0
        for b in batches:
            rows += sum(len(f) for f in stream.push(b.events))
            held[0] = max(held[0], stream.held_events)
        rows += sum(len(f) for f in stream.finish())
        return rows

    rows = timed("features (FeatureStream.push)", n, lambda: features(parsed))
    timed("parse + features", n, lambda: features(parse_lines(c, fmt) for c in chunks))
    print(f"{'':<38} ({rows:,} client rows over {n:,} lines; at most {held[0]:,} events held)")

    if args.model:
        from detector.service import Service

        service = Service.from_settings(load_settings(None, model=args.model, store={"path": ":memory:"}))

        def pipeline():
            for c in chunks:
                batch = parse_lines(c, fmt)
                service.ingest(batch.events, batch.stats)
            return service.scoring.rows

        scored = timed("parse + features + model + policy", n, pipeline)
        print(f"{'':<38} ({scored:,} rows scored in {service.scoring.ticks:,} ticks)")


if __name__ == "__main__":
    main()
