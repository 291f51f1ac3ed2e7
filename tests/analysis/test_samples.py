"""detector.samples: a demo log is simulated once, then left alone."""

from __future__ import annotations

from detector.samples import sample_log


def test_sample_log_simulates_only_when_missing(tmp_path):
    log = sample_log(tmp_path / "day", minutes=1, seed=3, clients=20, attackers=7)
    assert log == tmp_path / "day" / "access.log" and (tmp_path / "day" / "labels.csv").is_file()
    before = log.stat().st_mtime_ns
    assert sample_log(tmp_path / "day", minutes=1, seed=4, clients=20) == log
    assert log.stat().st_mtime_ns == before
