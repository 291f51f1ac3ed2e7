"""The simulator's output: files, formats, labels, and the behaviours the detector is tested against."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest

import detector
from detector.ingest.formats import OPENED, ended, parse_lines
from detector.sim import ATTACK_CLASSES, NORMAL_CLASSES, simulate
from detector.sim.attacks import _PROBES, PREFIX_CLASSES
from detector.sim.service import HOLD
from detector.sim.traffic import generate

SMALL = dict(minutes=3, clients=150, attackers=14)
KEYS = ("msec", "time_iso8601", "remote_addr", "request_method", "request_uri", "status", "body_bytes_sent",
        "request_time", "upstream_response_time", "http_user_agent", "request_id", "connection",
        "connection_requests")
LABEL_HEADER = ["client", "label", "class", "population", "attack_start", "attack_end", "active_in_outage"]
MS3 = re.compile(r"^\d+\.\d{3}$")
COMBINED = re.compile(r'^(\S+) - - \[([^\]]+)\] "(\S+) (\S+) (HTTP/[\d.]+)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$')


def nginx_escape(s: str) -> str:
    """nginx's default log escaping (``s`` keeps raw bytes as surrogate escapes)."""
    b = s.encode("utf-8", "surrogateescape")
    return "".join(chr(c) if 0x20 <= c < 0x7F and c not in (0x22, 0x5C) else f"\\x{c:02X}" for c in b)


def ms(value: str) -> int:
    whole, frac = value.split(".")
    return int(whole) * 1000 + int(frac)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    summary = simulate(out, seed=7, **SMALL)
    raw = (out / "access.log").read_bytes().splitlines()
    # Raw (non-UTF-8) bytes stay surrogate escapes, so both logs can be compared byte for byte.
    lines = [json.loads(b.decode("utf-8", "surrogateescape")) for b in raw]
    with open(out / "labels.csv", newline="") as f:
        labels = list(csv.DictReader(f))
    meta = orjson.loads((out / "meta.json").read_bytes())
    by_client = defaultdict(list)
    for rec in lines:
        by_client[rec["remote_addr"]].append(rec)
    return dict(out=out, summary=summary, raw=raw, lines=lines, labels=labels,
                label=({r["client"]: r for r in labels}), meta=meta, by_client=by_client)


def start_ms(rec) -> int:
    return ms(rec["msec"]) - ms(rec["request_time"])


def test_same_seed_same_bytes_other_seed_other_bytes(run, tmp_path):
    simulate(tmp_path / "again", seed=7, **SMALL)
    for name in ("access.log", "access_combined.log", "labels.csv", "meta.json"):
        assert (tmp_path / "again" / name).read_bytes() == (run["out"] / name).read_bytes(), name
    simulate(tmp_path / "other", seed=8, **SMALL)
    assert (tmp_path / "other" / "access.log").read_bytes() != (run["out"] / "access.log").read_bytes()


def test_output_does_not_depend_on_the_process(run, tmp_path):
    # Another interpreter with another string-hash seed writes the same bytes.
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join([str(Path(detector.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    code = f"from detector.sim import simulate; simulate({str(tmp_path)!r}, seed=7, **{SMALL!r})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert (tmp_path / "access.log").read_bytes() == (run["out"] / "access.log").read_bytes()


def test_summary_and_meta_agree_with_files(run):
    s, meta = run["summary"], run["meta"]
    assert s.lines == len(run["lines"]) == meta["lines"]
    assert s.clients == len(run["labels"]) == meta["clients"]
    # 14 single-address actors, plus every address of the distributed_flood operator(s)
    flood = sum(r["class"] == "distributed_flood" for r in run["labels"])
    assert s.attackers == sum(r["label"] == "abusive" for r in run["labels"]) == meta["attackers"] == 14 + flood
    assert flood == sum(op["addresses"] for op in meta["operators"]) >= 8
    assert sum(s.class_lines.values()) == s.lines
    assert meta["seed"] == 7 and meta["minutes"] == 3 and meta["hold_seconds"] == HOLD
    assert meta["end"] - meta["start"] == 180
    assert (meta["outage"]["start"], meta["outage"]["end"]) == s.outage
    assert set(s.paths) == {"access.log", "access_combined.log", "labels.csv", "meta.json"}


def test_lines_are_sorted_by_request_end(run):
    ends = [ms(r["msec"]) for r in run["lines"]]
    assert ends == sorted(ends)
    meta = run["meta"]
    assert meta["start"] * 1000 <= ends[0] and ends[-1] <= meta["end"] * 1000


def test_every_json_line_has_the_nginx_keys_and_types(run):
    ids = set()
    for rec in run["lines"]:
        assert set(KEYS) <= rec.keys()
        assert all(isinstance(rec[k], str) for k in KEYS)
        assert MS3.match(rec["msec"]) and MS3.match(rec["request_time"])
        assert re.fullmatch(r"[1-5]\d\d", rec["status"])
        assert rec["body_bytes_sent"].isdigit()
        up = rec["upstream_response_time"]
        assert up == "" or (MS3.match(up) and ms(up) <= ms(rec["request_time"]))
        assert re.fullmatch(r"[0-9a-f]{32}", rec["request_id"])
        assert rec["connection"].isdigit() and rec["connection_requests"].isdigit()
        assert int(rec["connection_requests"]) >= 1
        assert rec["request_method"] in ("GET", "POST", "HEAD", "OPTIONS", "PUT")
        assert rec["request_uri"].startswith("/")
        sec = ms(rec["msec"]) // 1000
        assert rec["time_iso8601"] == datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        ids.add(rec["request_id"])
    assert len(ids) == len(run["lines"])


def test_static_files_are_served_by_nginx_and_aborted_polls_are_499(run):
    statics = [r for r in run["lines"] if r["request_uri"].startswith("/static/")]
    assert statics and all(r["upstream_response_time"] == "" for r in statics)
    aborted = [r for r in run["lines"] if r["status"] == "499"]
    assert aborted and all(r["body_bytes_sent"] == "0" for r in aborted)
    assert {r["upstream_response_time"] == "" for r in aborted} == {True, False}


def test_combined_log_is_the_same_requests_in_the_same_order(run):
    comb = (run["out"] / "access_combined.log").read_bytes().splitlines()
    assert len(comb) == len(run["raw"])
    for raw, rec in zip(comb, run["lines"]):
        m = COMBINED.match(raw.decode("ascii"))  # everything outside ASCII is \xHH-escaped
        assert m, raw
        addr, tl, method, uri, _, status, nbytes, _, ua = m.groups()
        assert (addr, method, status, nbytes) == (rec["remote_addr"], rec["request_method"], rec["status"],
                                                  rec["body_bytes_sent"])
        sec = ms(rec["msec"]) // 1000
        assert tl == datetime.fromtimestamp(sec, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
        assert uri == nginx_escape(rec["request_uri"])
        assert ua == (nginx_escape(rec["http_user_agent"]) or "-")


def test_envoy_log_is_the_same_requests_with_a_start_record_each(tmp_path):
    simulate(tmp_path, seed=7, envoy=True, **SMALL)
    nginx = parse_lines((tmp_path / "access.log").read_bytes().splitlines(), "nginx-json").events
    raw = (tmp_path / "access_envoy.log").read_bytes().splitlines()
    batch = parse_lines(raw, "envoy-json")
    assert batch.stats.rejected == 0 and len(raw) == 2 * len(nginx)
    envoy = batch.events
    starts = envoy[envoy["status"] == OPENED]
    done = ended(envoy)
    assert len(starts) == len(done) == len(nginx)
    # written as Envoy writes them: by time, each request's start record before its end
    written = envoy["end"].to_numpy()
    assert (np.diff(written) >= -1e-6).all()
    key = ["client", "start", "path", "query", "ua"]
    per = envoy.assign(opened=envoy["status"] == OPENED).groupby(key, sort=False)["opened"]
    assert (per.sum() * 2 == per.size()).all() and per.first().all()  # as many ends as starts, a start first
    # the ended requests are the nginx log's, a client that left (499) written as 0 with DC
    cols = ["client", "method", "path", "query", "status", "bytes", "ua"]
    order = ["client", "end", *cols[1:]]
    a = nginx.assign(end=nginx["end"].round(3)).sort_values(order).reset_index(drop=True)
    b = done.assign(end=done["end"].round(3)).sort_values(order).reset_index(drop=True)
    assert a[cols].equals(b[cols])
    np.testing.assert_allclose(a["start"], b["start"], atol=2e-3)
    np.testing.assert_allclose(a["duration"], b["duration"], atol=2e-3)
    assert b"DC" in b"".join(r for r in raw if b'"response_code":0,"response_flags":"DC"' in r)


def test_nginx_start_log_is_access_log_with_a_start_line_before_each_request(tmp_path):
    simulate(tmp_path, seed=7, nginx_starts=True, **SMALL)
    plain = (tmp_path / "access.log").read_bytes().splitlines()
    raw = (tmp_path / "access_starts.log").read_bytes().splitlines()
    assert [r for r in raw if b'"phase":"start"' not in r] == plain  # the end lines, unchanged and in order
    batch = parse_lines(raw)
    assert batch.stats.rejected == 0 and len(raw) == 2 * len(plain)
    events = batch.events
    assert (np.diff(events["end"].to_numpy()) >= -1e-6).all()  # by the time each line is written
    key = ["client", "start", "path", "query", "ua"]
    rounded = events.assign(start=events["start"].round(3))
    per = rounded.assign(opened=rounded["status"] == OPENED).groupby(key, sort=False)["opened"]
    assert (per.sum() * 2 == per.size()).all() and per.first().all()  # as many ends as starts, a start first


def test_quotes_and_raw_bytes_are_written_like_nginx(tmp_path):
    # Scanners send raw quotes, backslashes and a user agent with a byte that is not UTF-8; over a
    # few seeds all of them show up (each scanner picks that agent with a chance of 1 in 15).
    quotes = raw = False
    for seed in range(24):
        if quotes and raw:
            break
        simulate(tmp_path / str(seed), seed=seed, minutes=4, clients=40, attackers=21)
        comb = (tmp_path / str(seed) / "access_combined.log").read_bytes()
        js = (tmp_path / str(seed) / "access.log").read_bytes()
        for line in comb.splitlines():
            assert COMBINED.match(line.decode("ascii")), line
        quotes |= b"\\x22" in comb and b'\\"' in js
        if b"caf\xe9" in js:  # the raw byte as sent in the JSON log, escaped in the combined one
            raw = True
            assert js.count(b"caf\xe9") == comb.count(b"caf\\xE9")
            with pytest.raises(UnicodeDecodeError):
                js.decode("utf-8")
    assert quotes and raw


def test_labels_cover_every_client_in_the_log(run):
    with open(run["out"] / "labels.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[: len(LABEL_HEADER)] == LABEL_HEADER
    clients = [r["client"] for r in run["labels"]]
    assert len(clients) == len(set(clients))
    assert set(clients) == set(run["by_client"])
    for r in run["labels"]:
        assert int(r["requests"]) == len(run["by_client"][r["client"]])
        if r["label"] == "normal":
            assert r["class"] in NORMAL_CLASSES and r["population"] == "normal"
            assert r["attack_start"] == r["attack_end"] == ""
        else:
            assert r["label"] == "abusive" and r["class"] in ATTACK_CLASSES and r["population"] == "abusive"
            assert MS3.match(r["attack_start"]) and MS3.match(r["attack_end"])
            assert run["meta"]["start"] < float(r["attack_start"]) < float(r["attack_end"]) <= run["meta"]["end"]
    assert {r["class"] for r in run["labels"]} == set(NORMAL_CLASSES) | set(ATTACK_CLASSES)
    v6 = sum(":" in c for c in clients)
    assert 0 < v6 < len(clients) / 2


def test_active_in_outage_matches_the_log(run):
    o0, o1 = (round(x * 1000) for x in run["summary"].outage)
    for r in run["labels"]:
        active = any(start_ms(x) < o1 and ms(x["msec"]) >= o0 for x in run["by_client"][r["client"]])
        assert int(r["active_in_outage"]) == active, r


def test_each_attack_class_attacks_inside_its_window_only():
    tr = generate(seed=7, **SMALL)
    cols = tr.cols
    actors = [c for c in tr.plan if c.actor is not None]
    assert sorted({c.cls for c in actors}) == sorted(ATTACK_CLASSES)
    assert all(sum(c.cls == k for c in actors) == 2 for k in ATTACK_CLASSES if k not in PREFIX_CLASSES)
    normal = np.array([c.actor is None for c in tr.plan])
    assert not cols["attack"][normal[cols["client"]]].any()
    for c in actors:
        mine = cols["client"] == c.index
        attack = mine & cols["attack"]
        assert attack.any(), c
        assert (mine & ~cols["attack"]).any(), f"{c.cls} should behave normally first"
        assert cols["start_ms"][attack].min() >= round(c.actor.start * 1000)
        assert cols["start_ms"][attack].max() < round(c.actor.end * 1000)
        assert cols["start_ms"][mine & ~cols["attack"]].min() < round(c.actor.start * 1000)


def test_attack_lines_in_the_log_follow_attack_start(run):
    probes = {p[0] for p in _PROBES} - {"/", "/login", "/favicon.ico"}
    for r in run["labels"]:
        if r["class"] not in ("scanner", "credential_stuffing"):
            continue
        begin = ms(r["attack_start"])
        mine = run["by_client"][r["client"]]
        if r["class"] == "scanner":
            hits = [x for x in mine if x["request_uri"] in probes]
        else:
            hits = [x for x in mine if x["request_method"] == "POST" and x["request_uri"] == "/login"
                    and x["status"] == "401"]
        assert len(hits) >= 3
        assert all(ms(x["msec"]) >= begin for x in hits)


def test_outage_answers_503_to_normal_clients_and_they_come_back(run):
    o0, o1 = (round(x * 1000) for x in run["summary"].outage)
    assert 30_000 <= o1 - o0 <= 300_000
    normal = {c for c, r in run["label"].items() if r["label"] == "normal"}
    inside = [x for c in normal for x in run["by_client"][c] if o0 <= start_ms(x) < o1]
    assert inside and all(x["status"] == "503" for x in inside)
    assert all(ms(x["request_time"]) <= 2 and x["upstream_response_time"] == "" for x in inside)
    n_503 = len({x["remote_addr"] for x in inside})
    assert n_503 >= 0.5 * sum(int(run["label"][c]["active_in_outage"]) for c in normal)
    outside = [x for c in normal for x in run["by_client"][c]
               if x["status"] == "503" and not o0 <= start_ms(x) < o1]
    assert outside == []
    # Polls held when it began were cut with a 502 at its start.
    cut = [x for c in normal for x in run["by_client"][c] if x["status"] == "502"]
    assert cut and all(start_ms(x) < o0 <= ms(x["msec"]) <= o0 + 5 for x in cut)
    # Surge back: most clients still retrying at the end succeed within a minute of it.
    late = {x["remote_addr"] for x in inside if start_ms(x) >= o1 - 20_000}
    back = {c for c in late if any(x["status"] in ("200", "204") and o1 <= start_ms(x) < o1 + 60_000
                                   for x in run["by_client"][c])}
    assert len(back) >= 0.8 * len(late) > 0


def test_nobody_normal_is_rate_limited(run):
    for c, r in run["label"].items():
        if r["label"] == "normal":
            assert all(x["status"] != "429" for x in run["by_client"][c]), r


def test_nat_offices_have_many_agents_and_out_request_attackers(run):
    offices = [c for c, r in run["label"].items() if r["class"] == "nat_office"]
    assert offices
    counts = {c: len(v) for c, v in run["by_client"].items()}
    attackers = sorted(counts[c] for c, r in run["label"].items() if r["label"] == "abusive")
    for c in offices:
        assert len({x["http_user_agent"] for x in run["by_client"][c]}) >= 10
        assert counts[c] > attackers[len(attackers) // 2]  # busier than most attackers


def test_polls_are_held_at_most_the_hold(run):
    polls = [x for x in run["lines"] if x["request_uri"].startswith("/v1/poll")]
    held = [ms(x["request_time"]) for x in polls]
    assert max(held) <= HOLD * 1000 + 10
    assert sum(h >= HOLD * 1000 for h in held) > 0  # some ran to the hold: 204s
    assert all(x["body_bytes_sent"] == "0" for x in polls if x["status"] == "204")
    assert all(int(x["body_bytes_sent"]) > 0 for x in polls if x["status"] == "200")


def test_health_checker_probes_on_an_exact_period(run):
    checkers = [c for c, r in run["label"].items() if r["class"] == "health_checker"]
    assert checkers
    o0, o1 = (round(x * 1000) for x in run["summary"].outage)
    for c in checkers:
        mine = run["by_client"][c]
        starts = [start_ms(x) for x in mine]
        steps = set(np.diff(starts).tolist())
        assert len(steps) == 1 and steps <= {5000, 10000, 30000}, steps
        period = steps.pop()
        assert len(mine) in (180_000 // period, 180_000 // period + 1)
        for x in mine:
            assert x["request_uri"] == "/healthz" and x["request_method"] == "GET"
            assert x["status"] == ("503" if o0 <= start_ms(x) < o1 else "200")
            assert x["connection_requests"] == "1"
            assert ms(x["request_time"]) <= 4


def test_normal_only_run_has_no_abusive_clients(tmp_path):
    s = simulate(tmp_path, seed=3, attacks=False, **SMALL)
    assert s.attackers == 0 and not set(s.class_clients) & set(ATTACK_CLASSES)
    with open(tmp_path / "labels.csv", newline="") as f:
        assert {r["label"] for r in csv.DictReader(f)} == {"normal"}


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        simulate(tmp_path, minutes=0)
    with pytest.raises(ValueError):
        simulate(tmp_path, clients=-1)
    with pytest.raises(ValueError, match="hold"):
        simulate(tmp_path, hold=0.5)


def test_the_hold_time_is_a_parameter(tmp_path):
    """A 55 s long-poll service: polls with nothing to answer run to 55 s, none longer."""
    simulate(tmp_path, seed=7, hold=55.0, **SMALL)
    lines = [json.loads(b) for b in (tmp_path / "access.log").read_bytes().splitlines()]
    held = [ms(x["request_time"]) for x in lines if x["request_uri"].startswith("/v1/poll")]
    assert max(held) <= 55_000 + 10
    assert sum(h >= 55_000 for h in held) > 0
    assert sum(25_000 <= h < 26_000 for h in held) < sum(h >= 55_000 for h in held) / 10
    assert orjson.loads((tmp_path / "meta.json").read_bytes())["hold_seconds"] == 55.0
