"""Start records end to end: the shipped model, a simulated day logged both ways, a parallel flood.

nginx writes a request's line when it ends, so a client opening dozens of long polls at once shows a
hold time (25 s) later; Envoy with ``flush_access_log_on_new_request`` also writes each request's start,
and so does nginx configured as ``deploy/nginx/nginx.conf.template`` (a line from each request's auth
subrequest): the open requests feature sees the flood at the next tick. Same requests, same model, three logs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.evaluate import evaluate_log
from detector.sim import simulate

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "current"


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("start-records")
    simulate(out, minutes=4, seed=1, clients=200, attackers=16, envoy=True, nginx_starts=True)
    return out


def _parallel_floods(day: Path, log: str) -> dict:
    result = evaluate_log([day / log], day / "labels.csv", SHIPPED_MODEL, progress=lambda done, total: None)
    return result.metrics["per_class"]["abusive"]["parallel_flood"]


def test_a_parallel_flood_is_caught_before_its_polls_end_only_with_start_records(day):
    envoy = _parallel_floods(day, "access_envoy.log")
    nginx_starts = _parallel_floods(day, "access_starts.log")
    nginx = _parallel_floods(day, "access.log")
    assert envoy["clients"] == nginx_starts["clients"] == nginx["clients"] == 3
    assert envoy["detected"] == nginx_starts["detected"] == nginx["detected"] == 3
    # from the start records: within seconds, long before the first poll is answered (25 s holds)
    assert envoy["ttd_median_s"] < 10
    assert nginx_starts["ttd_median_s"] < 10
    # from ends alone: not before the polls end
    assert nginx["ttd_median_s"] > 20
