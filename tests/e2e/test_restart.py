"""``kill -9`` of ``detector serve --tail`` while lines stream in, then a restart: it carries on from the stored
offset, so every line is processed once (plus at most the documented at-least-once window: one batch of
``ingest.batch_lines`` processed but not yet committed), and the decisions in force are still there."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from ..conftest import nginx_line

pytestmark = pytest.mark.slow

ABUSER = "203.0.113.66"
BATCH = 200  # ingest.batch_lines: the at-least-once window


def traffic(t0: float, t1: float, abuse_until: float, clients: int = 400, seed: int = 5) -> list[tuple[float, bytes]]:
    """Polite pollers from ``t0`` to ``t1`` and one reconnect loop from ``t0`` to ``abuse_until``, by end time."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(clients):
        t = t0 + rng.uniform(0, 10)
        while t < t1:
            hold = float(rng.uniform(1, 25))
            if t + hold <= t1:
                rows.append((t + hold, nginx_line(f"10.2.{c // 100}.{c % 100}", t + hold, hold,
                                                  204 if hold > 20 else 200, ua=f"Mozilla/5.0 v{c % 5}")))
            t += hold + float(rng.uniform(0.1, 1.0))
    for t in np.arange(t0, abuse_until, 0.06):
        rows.append((t + 0.05, nginx_line(ABUSER, t + 0.05, 0.05, 499, ua="python-requests/2.31")))
    rows.sort(key=lambda r: r[0])
    return rows


def write(path, lines: list[bytes], chunk: int = 100, pause: float = 0.05) -> None:
    """Append ``lines`` in chunks, as a gateway would (bounded: one pass over the list)."""
    with open(path, "ab") as fh:
        for i in range(0, len(lines), chunk):
            fh.write(b"".join(line + b"\n" for line in lines[i:i + chunk]))
            fh.flush()
            time.sleep(pause)


def processed(detector, source: str) -> int:
    return int(detector.metrics().get(f'detector_ingest_processed_events_total{{source="{source}"}}', 0))


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_kill_9_resumes_from_the_offset_and_keeps_decisions(lab, served_model, tmp_path, cleanup):
    log = tmp_path / "access.json.log"
    log.touch()
    source = f"tail:{log}"
    now = time.time()
    t0 = now - 100
    rows = traffic(t0, t0 + 90, abuse_until=t0 + 40)
    phase_a = [line for end, line in rows if end <= t0 + 60]
    phase_b = [line for end, line in rows if end > t0 + 60]
    total = len(rows)
    env = {"DETECTOR_INGEST__BATCH_LINES": str(BATCH)}

    def start():
        return lab.Detector(tmp_path / "detector", served_model, tail=[log], env=env, port=port).start()

    port = lab.free_port()
    first = start()
    cleanup.append(first)

    # phase A: the abusive client gets a decision
    write(log, phase_a)
    wait_for(lambda: processed(first, source) >= len(phase_a), 30, "phase A to be processed")
    score = json.loads(first.get(f"/score?client={ABUSER}")[2])
    assert score["verdict"] in ("throttle", "block"), score
    decision = score["decisions"][0]

    # phase B streams in; kill -9 in the middle of it
    writer = threading.Thread(target=write, args=(log, phase_b, 25, 0.1), daemon=True)
    writer.start()
    wait_for(lambda: processed(first, source) >= len(phase_a) + 3 * BATCH // 2, 30, "phase B to flow")
    seen = processed(first, source)  # processed lines, read just before the kill
    first.kill()
    state = json.loads((tmp_path / "detector" / "detector.offsets.json").read_text())["files"][str(log)]
    writer.join(30)
    assert not writer.is_alive()
    assert 0 < seen < total, "the kill must come mid-stream"

    # the stored offset is at a line boundary and counts the lines before it
    data = log.read_bytes()
    assert data.count(b"\n") == total
    committed = state["lines"]
    assert data[:state["offset"]].count(b"\n") == committed and data[state["offset"] - 1:state["offset"]] == b"\n"
    # processed but not committed when killed: at most one batch (the at-least-once window)
    assert seen - committed <= BATCH, (seen, committed)

    second = start()
    cleanup.append(second)
    # the decision taken before the crash is still in force, the same one
    after = json.loads(second.get(f"/score?client={ABUSER}")[2])
    assert decision["id"] in [d["id"] for d in after["decisions"]], (decision, after["decisions"])
    status, headers, _ = second.get("/authz", headers={"X-Real-IP": ABUSER})
    assert status in (403, 429) and headers["x-authz-decision"] in ("throttle", "block")

    # the restart reads exactly the lines after the stored offset: none lost, none before it again
    wait_for(lambda: processed(second, source) >= total - committed, 30, "the rest to be processed")
    time.sleep(0.5)
    metrics = second.metrics()
    assert processed(second, source) == total - committed
    assert metrics[f'detector_ingest_received_lines_total{{source="{source}"}}'] == total - committed
    assert metrics[f'detector_tail_events_total{{event="resumed",source="{source}"}}'] == 1
    final = json.loads((tmp_path / "detector" / "detector.offsets.json").read_text())["files"][str(log)]
    assert (final["offset"], final["lines"]) == (len(data), total)
    print(f"\nkilled after {seen} of {total} lines; offset had {committed} (re-read {max(seen - committed, 0)}); "
          f"the restart processed {total - committed}")
