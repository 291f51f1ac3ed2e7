"""Bad input fails with one line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.evaluate import evaluate_files, evaluate_log, write_report

HEADER = "client,label,class,population,attack_start,attack_end,active_in_outage\n"
GOOD_ROWS = "10.0.0.1,normal,browser,browser,,,0\n203.0.113.1,abusive,scanner,attacker,100,200,1\n"
GOOD_VERDICT = '{"client":"203.0.113.1","verdict":"block","score":0.8,"at":150.0,"until":1050.0}\n'


@pytest.fixture
def files(tmp_path: Path):
    def make(labels: str = HEADER + GOOD_ROWS, verdicts: str = GOOD_VERDICT, meta: str | None = None):
        (tmp_path / "labels.csv").write_text(labels)
        (tmp_path / "verdicts.jsonl").write_text(verdicts)
        if meta is not None:
            (tmp_path / "meta.json").write_text(meta)
        return tmp_path / "labels.csv", tmp_path / "verdicts.jsonl"
    return make


def fails(exc_type, match: str, labels, verdicts, **kw):
    with pytest.raises(exc_type, match=match) as info:
        evaluate_files(labels, verdicts, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_good_files_work(files):
    assert evaluate_files(*files()).metrics["model"]["tp"] == 1


@pytest.mark.parametrize("labels, match", [
    ("", r"labels\.csv: not a labels CSV"),
    ("client,label\n1.2.3.4,normal\n",
     r"labels\.csv: missing column\(s\) class, population, attack_start, attack_end, active_in_outage"),
    (HEADER, r"labels\.csv: no clients"),
    (HEADER + "10.0.0.1,normal,browser,browser,,,0\n10.0.0.2,evil,scanner,x,1,2,0\n",
     r"labels\.csv line 3: label 'evil' is not one of normal, abusive"),
    (HEADER + GOOD_ROWS + "10.0.0.1,normal,mobile,mobile,,,0\n",
     r"labels\.csv line 4: client 10\.0\.0\.1 listed twice"),
    (HEADER + "10.0.0.1,abusive,scanner,x,soon,200,0\n", r"labels\.csv line 2: attack_start 'soon' is not a number"),
    (HEADER + "10.0.0.1,normal,browser,browser,,,yes\n", r"labels\.csv line 2: active_in_outage 'yes' is not 0 or 1"),
    (HEADER + ",normal,browser,browser,,,0\n", r"labels\.csv line 2: empty client"),
])
def test_bad_labels(files, labels, match):
    fails(ValueError, match, *files(labels=labels))


def test_bad_meta(files):
    fails(ValueError, r"meta\.json: not JSON", *files(meta="{oops"))
    fails(ValueError, r"meta\.json: outage needs numeric start and end", *files(meta='{"outage": {"start": 1}}'))


@pytest.mark.parametrize("verdicts, match", [
    (GOOD_VERDICT + "{not json\n", r"verdicts\.jsonl line 2: not JSON"),
    ("\n" + '["a"]\n', r"verdicts\.jsonl line 2: expected a JSON object"),
    ('{"client":"1.2.3.4","verdict":"ban","at":1}\n', r"line 1: verdict 'ban' is not one of allow, throttle, block"),
    ('{"client":"1.2.3.4","verdict":"block"}\n', r"line 1: no at"),
    ('{"client":"1.2.3.4","verdict":"block","at":"noon"}\n', r"line 1: at 'noon' is not a number"),
    ('{"client":"1.2.3.4","verdict":"block","at":1,"score":"high"}\n', r"line 1: score 'high' is not a number"),
    ('{"verdict":"block","at":1}\n', r"line 1: no client"),
])
def test_bad_verdicts(files, verdicts, match):
    fails(ValueError, match, *files(verdicts=verdicts))


def test_missing_files(files, tmp_path: Path):
    labels, verdicts = files()
    fails(FileNotFoundError, r"labels file not found: .*nope\.csv", tmp_path / "nope.csv", verdicts)
    fails(FileNotFoundError, r"verdicts file not found: .*nope\.jsonl", labels, tmp_path / "nope.jsonl")
    fails(FileNotFoundError, r"no such log file: .*nope\.log", labels, verdicts, log_paths=[tmp_path / "nope.log"])
    fails(FileNotFoundError, r"no model card", labels, verdicts, model_path=tmp_path / "no-model")
    log = tmp_path / "access.log"
    log.write_text("")
    with pytest.raises(FileNotFoundError, match="not a model artifact"):
        evaluate_log([log], labels, tmp_path / "no-model")
    with pytest.raises(ValueError, match="at least one log file"):
        evaluate_log([], labels, tmp_path / "no-model")


def test_unknown_report_format(files, tmp_path: Path):
    result = evaluate_files(*files())
    with pytest.raises(ValueError, match="report format 'pdf': expected one of md, html"):
        write_report(result, tmp_path / "out", fmt="pdf")
