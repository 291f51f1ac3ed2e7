"""The ``detector`` command: thin subcommands over the library. Only this module and ``api`` read the clock.

Every command exits non-zero with a one-line reason on bad input, and shows progress on long runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import orjson

from detector.config import ConfigError, load_settings
from detector.ingest.formats import FORMATS, FormatError
from detector.operators import OperatorError, add_parsers
from detector.store import StoreError
from detector.progress import stderr_progress
from detector.records import BLOCK_FPR, THROTTLE_FPR

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A one-line reason to stop."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _version_today(models_dir: Path) -> str:
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    n = 1
    while (models_dir / f"{day}.{n}").exists():
        n += 1
    return f"{day}.{n}"


# -- simulate -------------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from detector.sim import simulate

    t0 = time.monotonic()
    summary = simulate(args.out, minutes=args.minutes, seed=args.seed, clients=args.clients,
                       attackers=args.attackers, attacks=not args.no_attacks, hold=args.hold, envoy=args.envoy,
                       nginx_starts=args.nginx_starts, progress=_say)
    _say(f"wrote {summary.lines} lines for {summary.clients} clients ({summary.attackers} abusive) "
         f"to {args.out} in {time.monotonic() - t0:.1f} s")
    return 0


# -- train ----------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from detector.features.stream import FeatureStream
    from detector.model import save_artifact, set_current
    from detector.pipeline import fit_model, training_rows

    if not 0 <= args.block_fpr <= args.throttle_fpr < 1:
        raise CliError(f"need 0 <= --block-fpr ({args.block_fpr}) <= --throttle-fpr ({args.throttle_fpr}) < 1")
    settings = load_settings(args.config)
    t0 = time.monotonic()
    rows = training_rows(args.logs, args.format or settings.ingest.format, mapping=settings.ingest.mapping(),
                         key=settings.ingest.client_key(),
                         stream=lambda: FeatureStream.configured(settings.features),
                         progress=stderr_progress("reading"))
    st = rows.stats
    _say(f"{st.summary()}; {len(rows.raw)} feature rows from {len(set(rows.clients))} clients")
    if len(rows.raw) < 2:
        raise CliError("too few feature rows to train on (is the log empty or of another format?)")
    _say(f"fitting IsolationForest ({args.trees} trees, max_samples {args.max_samples}) ...")
    model = fit_model(rows, settings.policy.to_config(), n_estimators=args.trees, max_samples=args.max_samples,
                      random_state=args.seed, throttle_fpr=args.throttle_fpr, block_fpr=args.block_fpr,
                      contamination=args.contamination)
    out = Path(args.out)
    version = out.name
    description = {"logs": [str(p) for p in args.logs], "lines": st.read, "parsed": st.parsed,
                   "rejected": st.rejected, "span": [float(rows.at.min()), float(rows.at.max())],
                   "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    path = save_artifact(model, out.parent, version, description)
    thr = model.thresholds_
    _say(f"saved {path} in {time.monotonic() - t0:.1f} s: throttle ≥ {thr.throttle:.4f}, block ≥ {thr.block:.4f}")
    if args.set_current:
        set_current(out.parent, version)
        _say(f"{out.parent / 'current'} -> {version}")
    return 0


# -- replay ---------------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from detector.model import load_artifact
    from detector.pipeline import Pipeline, replay

    settings = load_settings(args.config)
    model, card = load_artifact(args.model or settings.model)
    from detector.features.stream import FeatureStream

    pipeline = Pipeline(model, card["version"], settings.policy.to_config(),
                        stream=FeatureStream.configured(settings.features))
    t0 = time.monotonic()
    n = 0
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")
    try:
        for verdict in replay(args.logs, pipeline, args.format or settings.ingest.format,
                              mapping=settings.ingest.mapping(), key=settings.ingest.client_key(),
                              progress=stderr_progress("replaying")):
            out.write(orjson.dumps(verdict.to_json()) + b"\n")
            n += 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    st = pipeline.stats
    _say(f"{st.summary()}; {pipeline.stream.counters.late} late; {n} verdict changes in {time.monotonic() - t0:.1f} s")
    return 0


# -- evaluate -------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector.evaluate import evaluate_files, evaluate_log, format_summary, write_report

    if args.verdicts is None and not args.log:
        raise CliError("give --verdicts FILE, or --log LOG to replay it first")
    settings = load_settings(args.config)  # logs read, and a replay scored, as ``serve`` with it would
    fmt, mapping, key = args.format or settings.ingest.format, settings.ingest.mapping(), settings.ingest.client_key()
    if args.verdicts is not None:
        result = evaluate_files(args.labels, args.verdicts, args.log or (), fmt=fmt, model_path=args.model,
                                mapping=mapping, key=key)
    else:
        from detector.features.stream import FeatureStream

        result = evaluate_log(args.log, args.labels, args.model or settings.model, fmt=fmt, out_dir=args.report,
                              policy=settings.policy.to_config(), stream=FeatureStream.configured(settings.features),
                              mapping=mapping, key=key)
    print(format_summary(result))
    if args.report:
        path = write_report(result, args.report, fmt=args.report_format)
        _say(f"report: {path}")
    return 0


# -- serve ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from detector.api import Upkeep, create_app
    from detector.feeds import Ingestion
    from detector.service import Service

    overrides: dict = {}
    if args.model:
        overrides["model"] = args.model
    settings = load_settings(args.config, **overrides)
    host = args.host or settings.api.host
    port = args.port if args.port is not None else settings.api.port
    service = Service.from_settings(settings)
    upkeep = Upkeep(service, time.time, settings.api.watch_interval)
    show = _print_changes if (args.demo or args.verdicts) else None
    ingestion = Ingestion(service, time.time, time.sleep, on_changes=show)
    tails = list(dict.fromkeys([*settings.ingest.tail, *args.tail]))
    for path in tails:
        ingestion.add_tail(path, args.format)
    if args.stdin or settings.ingest.stdin:
        ingestion.add_stream("stdin", _stdin_reader(), args.format)
    if args.demo:
        _demo_feed(ingestion, args)
    ingestion.start()
    if settings.api.watch_interval > 0:
        upkeep.start()
    sources = [f"following {', '.join(tails)}"] if tails else []
    if args.stdin or settings.ingest.stdin:
        sources.append("reading stdin")
    if settings.ingest.http:
        sources.append("POST /v1/ingest")
    if args.demo:
        sources.append("demo traffic on (try /score?client=...)")
    _say(f"detector serving on http://{host}:{port} with model {service.version}, store {settings.store.path}"
         + (f"; {'; '.join(sources)}" if sources else ""))
    try:
        # proxy headers are detector's own business (trusted_proxies), not uvicorn's
        uvicorn.run(create_app(service, time.time, ingestion), host=host, port=port, log_level=args.log_level,
                    proxy_headers=False)
    finally:
        upkeep.stop()
        ingestion.stop()
        with service._lock:
            service.store.close()
    return 0


def _stdin_reader():
    """``read(n)``: what standard input has now (at most ``n`` bytes), ``b""`` at its end."""
    import os

    fd = sys.stdin.fileno()
    return lambda n: os.read(fd, n)


def _print_changes(changes) -> None:
    """Verdict changes as DESIGN.md's JSON lines, on stdout as they happen."""
    for v in changes:
        print(orjson.dumps(v.to_json()).decode(), flush=True)


def _demo_feed(ingestion, args) -> None:
    """Simulated traffic played back on the wall clock: the past 20 minutes at once (so most attacks
    are already under way), then live."""
    from detector.ingest.sources import paced, read_batches
    from detector.sim import simulate

    folder = Path(tempfile.mkdtemp(prefix="detector-demo-"))
    start = time.time() - 1200
    summary = simulate(folder, minutes=args.demo_minutes, seed=args.seed, clients=args.demo_clients,
                       attackers=max(7, args.demo_clients // 50), start=start)
    _say(f"demo: simulated {summary.lines} lines in {folder} (labels: {folder / 'labels.csv'})")
    abusive = [line.split(",")[0] for line in (folder / "labels.csv").read_text().splitlines()[1:]
               if ",abusive," in line]
    if abusive:
        _say(f"demo: abusive clients include {', '.join(abusive[:5])}")

    def gen(stop: threading.Event):
        yield from paced(read_batches([folder / "access.log"], "nginx-json"), time.time, time.sleep, stop.is_set)

    ingestion.add_batches("demo", gen)


# -- the parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from detector.sim.service import HOLD
    p = argparse.ArgumentParser(prog="detector", description="Anomaly detection for long-poll API endpoints.")
    sub = p.add_subparsers(dest="command", required=True)

    def fmt_opt(sp):
        sp.add_argument("--format", choices=("auto",) + FORMATS, default=None, help="log format (default: auto)")
        sp.add_argument("--config", default=None, help="TOML config file")

    s = sub.add_parser("simulate", help="write labelled long-poll traffic (logs + labels)")
    s.add_argument("--minutes", type=float, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.add_argument("--clients", type=int, default=2000, help="normal client addresses")
    s.add_argument("--attackers", type=int, default=40, help="abusive actors")
    s.add_argument("--no-attacks", action="store_true", help="normal traffic only (to train on)")
    s.add_argument("--hold", type=float, default=HOLD,
                   help=f"seconds the server holds a poll with nothing to answer (default {HOLD:g})")
    s.add_argument("--envoy", action="store_true",
                   help="also write access_envoy.log: Envoy JSON with a record at each request's start")
    s.add_argument("--nginx-starts", action="store_true",
                   help="also write access_starts.log: access.log with a line at each request's start, as "
                        "deploy/nginx/nginx.conf.template has nginx write it")
    s.set_defaults(func=cmd_simulate)

    t = sub.add_parser("train", help="fit a model artifact from logs")
    t.add_argument("logs", nargs="+")
    fmt_opt(t)
    t.add_argument("--out", required=True, help="artifact folder, e.g. models/2026-11-29.1")
    t.add_argument("--trees", type=int, default=300)
    t.add_argument("--max-samples", type=int, default=4096,
                   help="rows per tree; sklearn's 256 saturates on heterogeneous traffic (README: Detection)")
    t.add_argument("--throttle-fpr", type=float, default=THROTTLE_FPR,
                   help="share of training clients allowed to reach throttle")
    t.add_argument("--block-fpr", type=float, default=BLOCK_FPR, help="... to reach block (at most --throttle-fpr)")
    t.add_argument("--contamination", type=float, default=0.0, help="share of training clients assumed abusive")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set-current", action="store_true", help="point <out parent>/current at the new model")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("replay", help="run the live pipeline over an old log; write verdict changes")
    r.add_argument("logs", nargs="+", metavar="LOG")
    fmt_opt(r)
    r.add_argument("--model", default=None, help="artifact path (default: models/current)")
    r.add_argument("--out", required=True, help="verdicts JSONL ('-' for stdout)")
    r.set_defaults(func=cmd_replay)

    e = sub.add_parser("evaluate", help="measure verdicts against labels, with a tuned rate-limit baseline")
    e.add_argument("--labels", required=True)
    e.add_argument("--verdicts", default=None)
    e.add_argument("--log", nargs="*", default=[], help="the log (for the baseline; alone: replay it first)")
    e.add_argument("--model", default=None)
    fmt_opt(e)
    e.add_argument("--report", default=None, help="folder for the report and figures")
    e.add_argument("--report-format", choices=("md", "html"), default="md")
    e.set_defaults(func=cmd_evaluate)

    v = sub.add_parser("serve", help="the HTTP service")
    v.add_argument("--host", default=None)
    v.add_argument("--port", type=int, default=None)
    v.add_argument("--model", default=None)
    v.add_argument("--tail", nargs="*", default=[], metavar="LOG",
                   help="follow these log files (through rotation; resumes from the stored offsets)")
    v.add_argument("--stdin", action="store_true", help="also read log lines from standard input")
    fmt_opt(v)
    v.add_argument("--demo", action="store_true", help="feed built-in simulated traffic (with attacks)")
    v.add_argument("--verdicts", action="store_true", help="print verdict changes on stdout (on with --demo)")
    v.add_argument("--demo-minutes", type=float, default=30)
    v.add_argument("--demo-clients", type=int, default=300)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--log-level", default="warning")
    v.set_defaults(func=cmd_serve)

    add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, ConfigError, FormatError, FileNotFoundError, ValueError, OperatorError, StoreError) as exc:
        print(f"detector {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
