"""``detector evaluate``: measure verdicts against labels, compare with a tuned fixed rate limit, report.

Two ways in:

* ``evaluate_files(labels, verdicts, log_paths)``: a verdicts JSONL already written by
  ``detector replay``; with the log, the rate-limit baseline is computed too. Per-client scores are the
  maxima over each client's verdict lines (clients without a line score 0).
* ``evaluate_log(log_paths, labels, model)``: replay the log through the live pipeline first (verdicts
  written to ``out_dir/verdicts.jsonl``), keeping every client's highest score of any tick.

Then ``write_report(result, out_dir)`` writes the report, figures and ``metrics.json``, and
``format_summary(result)`` is the text the CLI prints. Modules: ``labels`` and ``verdicts`` read the
inputs, ``baseline`` is the rate limit, ``metrics`` the numbers, ``result`` puts them together,
``replay`` runs the pipeline, ``tables``/``summary``/``report``/``figures`` present them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import orjson

from detector.evaluate.baseline import BaselineResult, RequestTimes
from detector.evaluate.labels import Labels, read_labels
from detector.progress import stderr_progress
from detector.evaluate.replay import run_replay
from detector.evaluate.report import write_report
from detector.evaluate.result import EvaluationResult, evaluate
from detector.evaluate.summary import format_summary
from detector.evaluate.verdicts import read_verdicts, verdict_frame
from detector.features.stream import FeatureStream
from detector.ingest.formats import ClientKey, JsonlMapping
from detector.ingest.sources import read_batches
from detector.model import CARD_FILE, resolve
from detector.policy import PolicyConfig

__all__ = ["BaselineResult", "EvaluationResult", "evaluate_files", "evaluate_log", "format_summary",
           "write_report"]

VERDICTS_FILE = "verdicts.jsonl"
Progress = Callable[[int, int], None]


def evaluate_files(labels_path: str | Path, verdicts_path: str | Path, log_paths: Iterable[str | Path] = (),
                   fmt: str = "auto", progress: Progress | None = None, *,
                   model_path: str | Path | None = None, mapping: JsonlMapping | None = None,
                   key: ClientKey | None = None) -> EvaluationResult:
    """Evaluate a verdicts file against labels; with ``log_paths``, against the rate limit too.

    ``progress(bytes_done, bytes_total)`` follows the log read (default: a line on stderr).
    ``model_path`` (optional) names the artifact whose card gives the thresholds drawn in the figures.
    """
    log_paths = [Path(p) for p in log_paths]
    _check_logs(log_paths)
    labels = read_labels(labels_path)
    verdicts = read_verdicts(verdicts_path)
    thresholds = _card_thresholds(model_path) if model_path is not None else None
    requests = None
    if log_paths:
        requests = RequestTimes()
        for batch in read_batches(log_paths, fmt, mapping=mapping, key=key,
                                  progress=progress or stderr_progress("reading log")):
            requests.add(batch.events, batch.stats)
    return evaluate(labels, verdicts, requests=requests, thresholds=thresholds,
                    sources=_sources(labels, verdicts_path, log_paths, model_path))


def evaluate_log(log_paths: Iterable[str | Path], labels_path: str | Path, model_path: str | Path,
                 fmt: str = "auto", out_dir: str | Path | None = None,
                 progress: Progress | None = None, policy: PolicyConfig | None = None,
                 stream: FeatureStream | None = None, mapping: JsonlMapping | None = None,
                 key: ClientKey | None = None) -> EvaluationResult:
    """Replay logs through the pipeline with the model at ``model_path`` (and ``policy`` and ``stream``,
    default the defaults: a service's without a config file; ``mapping`` and ``key`` read the log as the
    config's ``[ingest]`` does), then evaluate the verdicts.

    The verdicts are written to ``out_dir/verdicts.jsonl`` when ``out_dir`` is given.
    """
    log_paths = [Path(p) for p in log_paths]
    if not log_paths:
        raise ValueError("evaluate_log needs at least one log file")
    _check_logs(log_paths)
    labels = read_labels(labels_path)  # bad labels fail before a long replay
    run = run_replay(log_paths, model_path, fmt, progress=progress or stderr_progress("replay"), policy=policy,
                     stream=stream, mapping=mapping, key=key)
    verdicts_path = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        verdicts_path = out / VERDICTS_FILE
        verdicts_path.write_bytes(b"".join(orjson.dumps(v) + b"\n" for v in run.verdicts))
    return evaluate(labels, verdict_frame(run.verdicts, source="replay"), scores=run.scores,
                    requests=run.requests, thresholds={"throttle": run.thresholds.throttle,
                                                       "block": run.thresholds.block},
                    sources={**_sources(labels, verdicts_path, log_paths, model_path),
                             "model_version": run.card.get("version")})


def _check_logs(paths: list[Path]) -> None:
    for p in paths:
        if str(p) != "-" and not p.is_file():
            raise FileNotFoundError(f"no such log file: {p}")


def _card_thresholds(model_path: str | Path) -> dict | None:
    card_path = resolve(model_path) / CARD_FILE
    if not card_path.is_file():
        raise FileNotFoundError(f"{model_path}: no model card ({CARD_FILE})")
    try:
        card = orjson.loads(card_path.read_bytes())
    except orjson.JSONDecodeError:
        raise ValueError(f"{card_path}: not JSON") from None
    return _pick_thresholds(card.get("thresholds") if isinstance(card, dict) else None)


def _pick_thresholds(thresholds) -> dict | None:
    if not isinstance(thresholds, dict):
        return None
    picked = {k: float(thresholds[k]) for k in ("throttle", "block") if isinstance(thresholds.get(k), (int, float))}
    return picked or None


def _sources(labels: Labels, verdicts_path, log_paths: list[Path], model_path) -> dict:
    return {"labels": str(labels.path), "verdicts": None if verdicts_path is None else str(verdicts_path),
            "logs": [str(p) for p in log_paths] or None, "model": None if model_path is None else str(model_path)}
