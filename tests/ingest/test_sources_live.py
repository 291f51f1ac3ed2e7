"""Live ingestion in one process: the bounded queue and its counts, the one consumer (acknowledgements after
processing, ticks closed on the wall clock when traffic pauses), tails resumed without repeats, and state
that stays bounded (idle clients evicted, a flood of new clients capped and counted)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from detector.config import load_settings
from detector.features.stream import FeatureStream
from detector.feeds import Ingestion, Ingestor, Parser
from detector.ingest.formats import parse_lines
from detector.ingest.queue import IngestQueue, Item
from detector.service import Service

from ..conftest import events, nginx_line, poll_traffic, reconnect_loop

T0 = 1_764_403_200.0


def batch(n: int, t: float = T0, client: str = "192.0.2.1"):
    return parse_lines([nginx_line(client, t + i * 0.01, 0.5) for i in range(n)] + [b"{bad"], "nginx-json")


def split(frame, parts: int):
    step = -(-len(frame) // parts)
    return [frame.iloc[i:i + step] for i in range(0, len(frame), step)]


def reconciles(queue: IngestQueue) -> bool:
    return all(c.received == c.parsed + c.malformed + c.skipped and c.parsed == c.queued + c.processed + c.failed + c.rejected_full
               for c in queue.counts().values())


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service(model_dir):
    settings = load_settings(None, model=model_dir / "current", store={"path": ":memory:"},
                             features={"tick": 1.0, "lateness": 1.0})
    return Service.from_settings(settings)


def test_a_full_queue_refuses_offers_and_makes_puts_wait():
    q = IngestQueue(capacity=10)
    assert q.offer(Item("http", batch(6)))
    assert q.offer(Item("http", batch(6)))  # admitted while fewer than 10 are queued: 12 now
    assert not q.offer(Item("http", batch(3)))
    assert q.offer(Item("http", batch(0)))  # nothing to hold: always taken (its malformed line counts)
    counts = q.counts()["http"]
    assert (counts.received, counts.parsed, counts.malformed, counts.queued, counts.rejected_full) == (19, 15, 4, 12, 3)
    assert reconciles(q)

    released = []
    waiter = threading.Thread(target=lambda: released.append(q.put(Item("tail", batch(2)), lambda: False, 0.01)))
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive()  # waits for room
    taken = q.take(max_events=100, timeout=0.1)
    assert [i.events for i in taken] == [6, 6, 0]
    assert waiter.is_alive()  # taken is not done: the events still count until processed
    q.done(taken)
    waiter.join(2)
    assert released == [True] and q.depth == 2
    assert q.counts()["http"].processed == 12 and reconciles(q)
    assert q.put(Item("tail", batch(20)), lambda: True)  # room: taken even from a stopping source
    before = q.counts()
    assert not q.put(Item("tail", batch(5)), lambda: True)  # full and stopping: gives up, counts nothing
    assert q.counts() == before


def test_take_coalesces_up_to_the_batch_size_but_always_one_item():
    q = IngestQueue(capacity=1000)
    for n in (3, 4, 50, 2):
        q.offer(Item("s", batch(n)))
    assert [i.events for i in q.take(10, 0.01)] == [3, 4]
    assert [i.events for i in q.take(10, 0.01)] == [50]
    assert [i.events for i in q.take(10, 0.01)] == [2]
    assert q.take(10, 0.01) == []


def test_the_consumer_acknowledges_after_processing(service):
    q = IngestQueue(1000)
    done = []
    ing = Ingestor(service, q, FakeClock(T0), batch_events=100)
    q.offer(Item("http", batch(5), [lambda failed: done.append((failed, service.stats.parsed))]))
    ing.process(q.take(100, 0.01))
    assert done == [(False, 5)]
    assert q.counts()["http"].processed == 5 and reconciles(q)


def test_a_failing_batch_is_counted_not_retried(service, monkeypatch):
    q = IngestQueue(1000)
    monkeypatch.setattr(service, "ingest", lambda *a: 1 / 0)
    done = []
    q.offer(Item("http", batch(5), [done.append]))
    Ingestor(service, q, FakeClock(T0)).process(q.take(100, 0.01))
    assert done == [True] and q.counts()["http"].failed == 5 and reconciles(q)


def test_ticks_close_on_the_wall_clock_when_traffic_pauses(service):
    q = IngestQueue(100_000)
    clock = FakeClock(T0 + 100)
    changes = []
    ing = Ingestor(service, q, clock, on_changes=changes.extend, idle_close=1.0)
    traffic = events(reconnect_loop("203.0.113.9", T0, T0 + 60).to_dict("records"))
    q.offer(Item("tail", type(batch(0))(traffic)))
    ing.process(q.take(100_000, 0.01))
    ticks = service.pipeline.stream.counters.ticks
    newest = service.newest
    ing.idle()  # no wall time has passed: nothing closes
    assert service.pipeline.stream.counters.ticks == ticks
    clock.now += 5.0  # five quiet seconds: event time is taken to have moved on as much
    ing.idle()
    assert service.pipeline.stream.counters.ticks > ticks
    assert service.pipeline.stream.watermark == pytest.approx(newest + 5.0 - 1.0)
    assert any(v.client == "203.0.113.9" for v in changes)
    # a line that now comes for a tick closed on the wall clock is counted late (and exported)
    q.offer(Item("tail", parse_lines([nginx_line("192.0.2.7", newest - 0.5, 0.5)], "nginx-json")))
    ing.process(q.take(10, 0.01))
    assert service.pipeline.stream.counters.late == 1


def test_the_consumer_thread_drains_the_queue_when_stopped(service):
    q = IngestQueue(100_000)
    ing = Ingestor(service, q, FakeClock(T0), poll=0.01)
    for i in range(5):
        q.offer(Item("stdin", batch(100, T0 + i)))
    ing.start()
    ing.stop(timeout=10)
    assert not ing.is_alive() and q.counts()["stdin"].processed == 500 and q.depth == 0


def test_a_tail_resumes_after_a_restart_without_repeating_lines(model_dir, tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(nginx_line(f"10.0.0.{i % 9}", T0 + i, 1.0) + b"\n" for i in range(300)))
    settings = load_settings(None, model=model_dir / "current", store={"path": str(tmp_path / "d.db")},
                             ingest={"poll_interval": 0.01, "batch_lines": 40})

    def run(expected: int) -> Ingestion:
        service = Service.from_settings(settings)
        ing = Ingestion(service, FakeClock(T0))
        ing.add_tail(log, "nginx-json")
        ing.start()
        deadline = time.monotonic() + 20
        while ing.queue.counts().get(f"tail:{log}") is None or ing.queue.counts()[f"tail:{log}"].processed < expected:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ing.stop()
        service.store.close()
        return ing

    first = run(300)
    assert first.book.path == tmp_path / "d.offsets.json"
    with open(log, "ab") as fh:
        fh.write(b"".join(nginx_line("10.0.0.1", T0 + 300 + i, 1.0) + b"\n" for i in range(50)) + b"{torn")
    second = run(50)
    counts = second.queue.counts()[f"tail:{log}"]
    assert (counts.received, counts.processed) == (50, 50)  # the torn last line waits for its newline
    assert second.book.snapshot()[str(log)].lines == 350


def test_a_parser_without_a_detectable_format_counts_lines_and_retries():
    p = Parser("auto", load_settings(None))
    first = p([b"garbage", b""])
    assert first.stats.malformed == {"unknown_format": 1, "empty": 1} and p.fmt == "auto"
    assert len(p([nginx_line("192.0.2.1", T0, 1.0)]).events) == 1 and p.fmt == "nginx-json"


# -- bounded state ---------------------------------------------------------------------------------
def test_a_flood_of_new_clients_is_capped_and_counted_while_known_clients_go_on():
    s = FeatureStream(tick=1.0, lateness=0.0, max_clients=50)
    list(s.push(poll_traffic(clients=20, seconds=30, t0=T0)))
    # (the pollers' last answers end by T0 + 55)
    flood = events([dict(client=f"198.18.{i // 250}.{i % 250}", start=T0 + 60 + i * 0.001, end=T0 + 60.1 + i * 0.001)
                    for i in range(5000)])
    known = events([dict(client="10.1.3.7", start=T0 + 64, end=T0 + 66)])
    frames = list(s.push(flood)) + list(s.push(known)) + list(s.finish())
    assert s.tracked_clients <= 50
    assert s.counters.refused_clients == 5000 - 30 and s.counters.refused_events == 5000 - 30
    assert s.counters.late == 0
    assert any("10.1.3.7" in f.clients for f in frames)


def test_idle_clients_are_evicted_and_frames_do_not_change():
    traffic = poll_traffic(clients=60, seconds=400, t0=T0)
    leaving = {f"10.1.{c}.7" for c in range(30)}  # half the clients go quiet after 150 s
    quiet = traffic[~(traffic["client"].isin(leaving) & (traffic["end"] > T0 + 150))]
    parts = split(quiet, 40)

    def run(evict: bool):
        s = FeatureStream(tick=2.0, lateness=1.0)
        frames = []
        for part in parts:
            frames += list(s.push(part))
            if evict:
                s.evict_idle()
        return s, frames + list(s.finish())

    plain, a = run(False)
    evicting, b = run(True)
    assert evicting.counters.evicted_clients == 30 and evicting.tracked_clients < plain.tracked_clients
    assert [(f.at, list(f.clients)) for f in a] == [(f.at, list(f.clients)) for f in b]
    assert all(np.array_equal(x.raw, y.raw, equal_nan=True) for x, y in zip(a, b))


def test_the_service_keeps_observations_under_the_cap(model_dir):
    settings = load_settings(None, model=model_dir / "current", store={"path": ":memory:", "max_observations": 30},
                             features={"tick": 1.0, "lateness": 0.0})
    service = Service.from_settings(settings)
    traffic = poll_traffic(clients=150, seconds=120, t0=T0)
    for part in split(traffic, 20):
        service.ingest(part)
        assert len(service.store) <= 30 + 150  # never more than the cap plus one tick's clients
    assert len(service.store) <= 30 + 50 and service.pipeline.evicted_observations > 0


def test_standard_input_is_read_as_it_comes(service):
    import os

    read_end, write_end = os.pipe()
    ing = Ingestion(service, FakeClock(T0))
    ing.add_stream("stdin", lambda n: os.read(read_end, n), "nginx-json")
    ing.start()
    os.write(write_end, b"".join(nginx_line("192.0.2.9", T0 + i, 0.5) + b"\n" for i in range(30)) + b"{no newline")
    os.close(write_end)
    deadline = time.monotonic() + 10
    while ing.queue.counts().get("stdin") is None or ing.queue.counts()["stdin"].received < 31:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ing.stop()
    os.close(read_end)
    counts = ing.queue.counts()["stdin"]
    assert (counts.processed, counts.malformed) == (30, 1) and reconciles(ing.queue)


def test_live_settings_are_validated():
    from detector.config import ConfigError

    for bad in ({"ingest": {"batch_lines": 0}}, {"ingest": {"tail_from": "middle"}}, {"ingest": {"tail": [" "]}},
                {"features": {"max_clients": 0}}, {"features": {"idle_close": -1}}, {"store": {"max_observations": 0}}):
        with pytest.raises(ConfigError, match="bad config value"):
            load_settings(None, **bad)
