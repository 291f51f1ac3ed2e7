"""Parsers: real-looking lines of every format, malformed ones counted by reason, and real logs."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.ingest.formats import (CLIENT_CLOSED, OPENED, ClientKey, FormatError, JsonlMapping, detect_format, ended,
                                     parse_lines)
from detector.ingest.identity import parse_networks

from ..conftest import nginx_line

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"

NGINX_JSON = [
    b'{"msec":"1764403212.345","remote_addr":"203.0.113.9","request_method":"GET",'
    b'"request_uri":"/v1/poll?channel=7&cursor=42","status":"204","body_bytes_sent":"0","request_time":"25.001",'
    b'"http_user_agent":"Mozilla/5.0 (X11; Linux x86_64)","request_id":"9f1c","upstream_response_time":"25.000",'
    b'"connection":"41","connection_requests":"3","time_iso8601":"2025-11-29T08:00:12+00:00"}',
    # numbers unquoted, empty upstream time, retried upstream, unknown extra keys
    b'{"msec":1764403213.5,"remote_addr":"2001:db8::7","request_method":"POST","request_uri":"/login",'
    b'"status":401,"body_bytes_sent":52,"request_time":0.012,"http_user_agent":"","upstream_response_time":"",'
    b'"extra":"x"}',
    b'{"msec":"1764403214.000","remote_addr":"198.51.100.4","request_method":"GET","request_uri":"/v1/poll",'
    b'"status":"499","body_bytes_sent":"0","request_time":"0.050","http_user_agent":"curl/8.0",'
    b'"upstream_response_time":"0.1, 0.2"}',
]


def test_nginx_json_fields():
    batch = parse_lines(NGINX_JSON, "nginx-json")
    ev = batch.events
    assert batch.stats.read == 3 and batch.stats.parsed == 3 and batch.stats.malformed == {}
    assert ev["client"].tolist() == ["203.0.113.9", "2001:db8::7", "198.51.100.4"]
    assert ev["end"].tolist() == [1764403212.345, 1764403213.5, 1764403214.0]
    assert ev["start"].iloc[0] == pytest.approx(1764403212.345 - 25.001)  # msec is the END
    assert ev["duration"].tolist() == pytest.approx([25.001, 0.012, 0.05])
    assert ev["path"].tolist() == ["/v1/poll", "/login", "/v1/poll"]
    assert ev["query"].tolist() == ["channel=7&cursor=42", "", ""]
    assert ev["status"].tolist() == [204, 401, 499]
    assert ev["bytes"].tolist() == [0, 52, 0]
    assert ev["method"].tolist() == ["GET", "POST", "GET"]
    assert ev["ua"].tolist() == ["Mozilla/5.0 (X11; Linux x86_64)", "", "curl/8.0"]


def test_malformed_lines_are_counted_by_reason_and_skipped():
    lines = NGINX_JSON[:1] + [
        b'{"msec":"1764403212.345","remote_addr":"203.0.113.9","sta',  # truncated
        b"",  # empty
        b"[1, 2]",  # not an object
        b'{"msec":"1764403212.345","status":"200"}',  # no client
        b'{"remote_addr":"192.0.2.1","status":"200"}',  # no time
        b'{"msec":"soon","remote_addr":"192.0.2.1","status":"200"}',  # bad time
        b'{"msec":"1.0","remote_addr":"192.0.2.1","status":"abc"}',  # bad status
        b'{"msec":"1.0","remote_addr":"192.0.2.1","status":"200","request_time":"-3"}',  # negative duration
    ]
    batch = parse_lines(lines, "nginx-json")
    assert batch.stats.read == 9
    assert batch.stats.parsed == 1
    assert batch.stats.malformed == {
        "invalid_json": 1, "empty": 1, "not_an_object": 1, "missing_field:remote_addr": 1,
        "missing_field:msec": 1, "bad_value:msec": 1, "bad_value:status": 1, "bad_value:request_time": 1,
    }
    assert batch.stats.rejected == 8


def test_invalid_utf8_is_decoded_not_rejected():
    # nginx escape=json writes invalid bytes raw
    line = b'{"msec":"5.0","remote_addr":"192.0.2.1","status":"200","http_user_agent":"bad \xff\xfe ua"}'
    batch = parse_lines([line], "nginx-json")
    assert batch.stats.parsed == 1
    assert batch.events["ua"].iloc[0] == "bad \ufffd\ufffd ua"


def test_combined_format_and_quotes_inside_the_request():
    lines = [
        b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/x.png HTTP/1.1" 200 203023 '
        b'"http://semicomplete.com/" "Mozilla/5.0 (Macintosh)"',
        # an attack payload with escaped quotes inside the request line and the UA
        b'192.0.2.5 - - [17/May/2015:10:05:04 +0000] "GET /search?q=\\"><script>alert(1)</script> HTTP/1.1" 404 0 '
        b'"-" "sqlmap/1.7 \\"x\\""',
        # nginx's own escaping: \x22
        b'192.0.2.6 - bob [17/May/2015:12:05:05 +0200] "GET /a\\x22b HTTP/1.1" 200 5 "-" "-"',
        # garbage request line (TLS to a plain port) is still a real request
        b'192.0.2.7 - - [17/May/2015:10:05:06 +0000] "\\x16\\x03\\x01" 400 150 "-" "-"',
        b"not a log line at all",
    ]
    batch = parse_lines(lines, "nginx-combined")
    ev = batch.events
    assert batch.stats.malformed == {"no_match": 1}
    assert ev["client"].tolist() == ["83.149.9.216", "192.0.2.5", "192.0.2.6", "192.0.2.7"]
    assert ev["end"].tolist() == [1431857103.0, 1431857104.0, 1431857105.0, 1431857106.0]
    assert ev["path"].tolist()[:3] == ["/presentations/x.png", "/search", '/a"b']
    assert ev["query"].iloc[1] == 'q="><script>alert(1)</script>'
    assert ev["ua"].tolist() == ["Mozilla/5.0 (Macintosh)", 'sqlmap/1.7 "x"', "", ""]
    assert ev["status"].tolist() == [200, 404, 200, 400]
    assert ev["duration"].isna().all()  # combined logs carry no duration


def test_envoy_json_logs_the_start_time():
    line = orjson.dumps({
        "start_time": "2025-11-29T08:00:00.500Z", "duration": 25000, "downstream_remote_address": "203.0.113.9:51234",
        "response_code": 204, "bytes_sent": 0, "path": "/v1/poll?cursor=1", "method": "GET",
        "user_agent": "okhttp/4.12", "response_flags": "-", "x_request_id": "abc",
    })
    v6 = orjson.dumps({"start_time": "2025-11-29T08:00:01Z", "duration": 3, "downstream_remote_address":
                       "[2001:db8::1]:443", "response_code": 200, "path": "/", "method": "GET"})
    batch = parse_lines([line, v6], "envoy-json")
    ev = batch.events
    assert ev["client"].tolist() == ["203.0.113.9", "2001:db8::1"]
    assert ev["start"].iloc[0] == pytest.approx(1764403200.5)
    assert ev["end"].iloc[0] == pytest.approx(1764403225.5)
    assert ev["duration"].iloc[0] == pytest.approx(25.0)
    assert ev["end"].iloc[1] == pytest.approx(1764403201.003)


def test_envoy_start_records_are_open_requests_and_a_client_that_left_is_499():
    base = {"downstream_remote_address": "203.0.113.9:5000", "path": "/v1/poll", "method": "GET", "user_agent": "x"}
    lines = [orjson.dumps({**base, **extra}) for extra in (
        {"start_time": "2025-11-29T08:00:00.500Z", "access_log_type": "DownstreamStart", "response_code": 0,
         "duration": None},
        {"start_time": "2025-11-29T08:00:00.500Z", "access_log_type": "DownstreamPeriodic", "response_code": 0},
        {"start_time": "2025-11-29T08:00:00.500Z", "access_log_type": "DownstreamEnd", "response_code": 0,
         "response_flags": "DC", "duration": 7000},
        {"start_time": "2025-11-29T08:00:01.000Z", "access_log_type": "DownstreamStart", "duration": "-"},
        {"start_time": "2025-11-29T08:00:02.000Z", "response_code": 0, "response_flags": "UF", "duration": 3},
    )]
    batch = parse_lines(lines, "envoy-json")
    ev = batch.events
    # start records: status OPENED, no duration, start == end == the request's start
    assert ev["status"].tolist() == [OPENED, CLIENT_CLOSED, OPENED]
    assert ev["duration"].isna().tolist() == [True, False, True]
    assert ev["end"].tolist() == pytest.approx([1764403200.5, 1764403207.5, 1764403201.0])
    assert (ev["start"] == ev["end"]).tolist() == [True, False, True]
    # a periodic record is skipped (no error, counted apart), not an event; a 0 without DC is no HTTP status
    assert batch.stats.malformed == {"bad_value:response_code": 1}
    assert batch.stats.skipped == {"DownstreamPeriodic": 1}
    assert batch.stats.read == batch.stats.parsed + batch.stats.rejected + batch.stats.passed
    assert ended(ev)["status"].tolist() == [CLIENT_CLOSED]


def test_nginx_start_lines_are_open_requests_that_began_request_time_before_msec():
    """Lines as the auth subrequest of deploy/nginx's template writes them (values seen with nginx 1.22)."""
    base = {"remote_addr": "127.0.0.3", "request_method": "GET", "request_uri": "/v1/poll?c=4",
            "http_user_agent": "curl/7.88.1", "request_id": "f6049663fe307749f5dbff7e6426507d"}
    lines = [orjson.dumps({**base, **extra}) for extra in (
        {"phase": "start", "msec": "1795974110.815", "status": "200", "request_time": "0.003"},
        {"phase": "start", "msec": "1795974111.000", "status": "403"},  # no request_time: at msec
        {"msec": "1795974112.321", "status": "200", "request_time": "1.509", "body_bytes_sent": "2"},
        {"phase": "end", "msec": "1795974113.000", "status": "204", "request_time": "0.500"},
        {"phase": "middle", "msec": "1795974114.000", "status": "204", "request_time": "0.500"},  # not ours
    )]
    batch = parse_lines(lines)  # auto: nginx-json
    ev = batch.events
    assert ev["status"].tolist() == [OPENED, OPENED, 200, 204, 204]
    assert ev["duration"].isna().tolist() == [True, True, False, False, False]
    assert ev["start"].tolist() == pytest.approx([1795974110.812, 1795974111.0, 1795974110.812, 1795974112.5,
                                                  1795974113.5])
    assert ev["end"].tolist() == pytest.approx([1795974110.812, 1795974111.0, 1795974112.321, 1795974113.0,
                                                1795974114.0])
    # the start line and the request's own line give the same start to the millisecond
    assert round(ev["start"].iloc[0] * 1000) == round(ev["start"].iloc[2] * 1000)
    # a phase other than start is no kind of ours (nginx's unknown keys are ignored): an ordinary line
    assert batch.stats.malformed == {} and batch.stats.skipped == {}
    assert ended(ev)["status"].tolist() == [200, 204, 204]


def test_jsonl_with_a_field_mapping():
    mapping = JsonlMapping(client="ip", time="ts", time_unit="ms", time_is="start", duration="ms",
                           duration_unit="ms", method=None, uri="url", status="code", bytes=None, ua=None)
    batch = parse_lines([b'{"ip":"192.0.2.1","ts":1000500,"ms":250,"url":"/x?y=1","code":200}'], "jsonl",
                        mapping=mapping)
    ev = batch.events
    assert ev[["client", "start", "end", "duration", "path", "status"]].values.tolist() == [
        ["192.0.2.1", 1000.5, 1000.75, 0.25, "/x", 200]]


def test_jsonl_mapping_rejects_bad_settings():
    with pytest.raises(ValueError, match="time_unit"):
        JsonlMapping(time_unit="hours")


def test_client_from_forwarded_for_behind_trusted_proxies():
    line = orjson.dumps({"msec": "5.0", "remote_addr": "10.0.0.2", "status": "200",
                         "http_x_forwarded_for": "203.0.113.50, 10.0.0.9"})
    key = ClientKey(forwarded_for_field="http_x_forwarded_for", trusted_proxies=parse_networks(["10.0.0.0/8"]))
    assert parse_lines([line], "nginx-json", key=key).events["client"].tolist() == ["203.0.113.50"]
    assert parse_lines([line], "nginx-json").events["client"].tolist() == ["10.0.0.2"]


def test_client_keyed_on_another_field():
    line = orjson.dumps({"msec": "5.0", "remote_addr": "10.0.0.2", "status": "200", "http_x_api_key": "k-123"})
    assert parse_lines([line], "nginx-json", key=ClientKey(field="http_x_api_key")).events["client"].tolist() == ["k-123"]


def test_auto_detection():
    assert detect_format(NGINX_JSON) == "nginx-json"
    assert parse_lines(NGINX_JSON, "auto").stats.parsed == 3
    with pytest.raises(FormatError):
        detect_format([b"hello", b"world"])
    with pytest.raises(FormatError, match="mapping"):
        parse_lines([b'{"a": 1}'], "auto")
    with pytest.raises(FormatError, match="unknown format"):
        parse_lines(NGINX_JSON, "apache-xml")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_bytes_never_crash_and_counts_reconcile(lines):
    for fmt in ("nginx-json", "nginx-combined", "envoy-json"):
        batch = parse_lines(lines, fmt)
        assert batch.stats.read == len(lines)
        assert batch.stats.parsed + batch.stats.rejected == len(lines)
        assert len(batch.events) == batch.stats.parsed


@settings(max_examples=200, deadline=None)
@given(client=st.from_regex(r"\A[0-9a-f:.]{1,39}\Z"), end=st.floats(1e9, 2e9), duration=st.floats(0, 60),
       status=st.integers(100, 599), ua=st.text(max_size=80), nbytes=st.integers(0, 10**9),
       uri=st.text(max_size=80))
def test_nginx_json_round_trip(client, end, duration, status, ua, nbytes, uri):
    line = nginx_line(client, end, duration, status, uri=uri, ua=ua, nbytes=nbytes)
    batch = parse_lines([line], "nginx-json")
    assert batch.stats.parsed == 1
    row = batch.events.iloc[0]
    assert row["client"] == client and row["status"] == status and row["bytes"] == nbytes and row["ua"] == ua
    assert row["end"] == pytest.approx(round(end, 3)) and row["duration"] == pytest.approx(round(duration, 3))
    assert row["path"] + ("?" + row["query"] if "?" in uri else "") == uri


@settings(max_examples=200, deadline=None)
@given(ua=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=60),
       path=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs"), blacklist_characters='\r\n\\"?'),
                    min_size=1, max_size=40))
def test_combined_round_trip_with_escaped_quotes(ua, path):
    esc = ua.replace("\\", "\\\\").replace('"', '\\"')
    line = f'192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET /{path} HTTP/1.1" 200 5 "-" "{esc}"'.encode()
    batch = parse_lines([line], "nginx-combined")
    assert batch.stats.parsed == 1
    assert batch.events["ua"].iloc[0] == (ua if ua != "-" else "")
    assert batch.events["path"].iloc[0] == "/" + path


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/data/real is not beside this checkout")
def test_real_apache_log_parses_completely():
    lines = (REAL / "elastic_apache_logs.log").read_bytes().splitlines()
    batch = parse_lines(lines, "auto")
    assert batch.stats.read == 10_001
    assert batch.stats.parsed == 10_001  # a real public site's log: every line is valid combined
    ev = batch.events
    assert ev["client"].nunique() == 1753
    assert ev["ua"].nunique() == 558
    assert (ev["end"].max() - ev["end"].min()) / 3600 == pytest.approx(83, abs=1)
    assert math.isnan(ev["duration"].iloc[0])
