"""Pure parsers: log lines in, a columnar batch of events out, malformed lines counted by reason.

Every format fills the same columns (``EVENT_COLUMNS``):

========  =======  ===========================================================================
client    str      the client key (``remote_addr`` unless configured otherwise)
start     float    request start, epoch seconds (``end - duration``; ``end`` when unknown)
end       float    request end, epoch seconds (nginx's ``$msec``)
duration  float    seconds the request was held; NaN when the format has none (combined)
method    str      HTTP method
path      str      URI path without the query string
query     str      the query string ("" when none)
status    int      HTTP status; ``OPENED`` (0) for a start record (below)
bytes     int      response body bytes
ua        str      user agent ("" when none)
========  =======  ===========================================================================

A *start record* is a request's line written when it began: status ``OPENED``, no duration,
``start == end`` = its start. Envoy writes one with ``flush_access_log_on_new_request`` (``access_log_type``
``DownstreamStart``); nginx, from the ``auth_request`` subrequest made at each request's start
(``log_subrequest on`` in the auth location, a ``log_format`` with ``"phase":"start"``: see
``deploy/nginx/nginx.conf.template``). nginx's ``$msec`` there is when the subrequest ended and its
``$request_time`` counts from the main request's start, so ``msec - request_time`` is the same start, to the
millisecond, as the request's own end line gives.
The same request's end comes later as an ordinary row. Start records let the feature stage see requests
still open (a client opening forty polls at once) before any of them ends; ``ended`` drops them for
whatever counts finished requests.

Lines are bytes or str; invalid UTF-8 is decoded with replacement characters, never rejected. A bad
line is counted under a reason (``invalid_json``, ``missing_field:<name>``, ``bad_value:<name>``,
``not_an_object``, ``no_match``, ``empty``) and skipped; it never stops a run. Records that are neither
a request's start nor its end (Envoy's ``DownstreamPeriodic``, ...) are no error: they are passed over and
counted apart, in ``IngestStats.skipped`` by their type. nginx's ``phase`` only marks start lines: a line
with any other ``phase`` is an ordinary one, as every unknown key of an nginx line is ignored.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import orjson
import pandas as pd

from detector.ingest.identity import Network, client_from_forwarded
from detector.records import IngestStats

EVENT_COLUMNS = ("client", "start", "end", "duration", "method", "path", "query", "status", "bytes", "ua")
FORMATS = ("nginx-json", "nginx-combined", "envoy-json", "jsonl")
#: The status of a start record: the request has begun and has no answer yet.
OPENED = 0
#: A start record's ``access_log_type`` (Envoy) or ``phase`` (nginx), and those of an ordinary (end-of-request) line.
_START_TYPES, _END_TYPES = ("DownstreamStart", "start"), ("DownstreamEnd", "NotSet", "")
#: nginx's status for a request whose client went away before the answer (Envoy writes 0 and flag DC).
CLIENT_CLOSED = 499

#: The logical fields of the ``jsonl`` format and what nginx-json names them.
NGINX_JSON_FIELDS = {
    "client": "remote_addr",
    "time": "msec",
    "duration": "request_time",
    "method": "request_method",
    "uri": "request_uri",
    "status": "status",
    "bytes": "body_bytes_sent",
    "ua": "http_user_agent",
}


class FormatError(ValueError):
    """The input's format cannot be determined or is not supported."""


@dataclass(frozen=True)
class JsonlMapping:
    """How a ``jsonl`` line maps onto event fields.

    ``time`` names the timestamp field; ``time_is`` says whether it marks the request's ``end``
    (nginx) or ``start`` (Envoy); ``time_unit`` is ``s``, ``ms`` or ``iso8601``; ``duration_unit``
    is ``s`` or ``ms``. Fields other than client, time and status may be absent from the mapping.
    """

    client: str = "remote_addr"
    time: str = "msec"
    time_is: str = "end"
    time_unit: str = "s"
    duration: str | None = "request_time"
    duration_unit: str = "s"
    method: str | None = "request_method"
    uri: str | None = "request_uri"
    status: str = "status"
    bytes: str | None = "body_bytes_sent"
    ua: str | None = "http_user_agent"
    log_type: str | None = None  # Envoy's ``access_log_type``, nginx's ``phase``: start records and other non-end records
    start_only: bool = False  # ``log_type`` marks start records only: any other value is an ordinary line
    flags: str | None = None  # Envoy's ``response_flags``: a 0 status with ``DC`` is a client that left (499)

    def __post_init__(self) -> None:
        for key, allowed in (("time_is", ("start", "end")), ("time_unit", ("s", "ms", "iso8601")),
                             ("duration_unit", ("s", "ms"))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"jsonl mapping {key}={getattr(self, key)!r}: expected one of {allowed}")


NGINX_JSON = JsonlMapping(log_type="phase", start_only=True)  # other keys of nginx's are ignored, ``phase`` too
ENVOY_JSON = JsonlMapping(
    client="downstream_remote_address", time="start_time", time_is="start", time_unit="iso8601",
    duration="duration", duration_unit="ms", method="method", uri="path", status="response_code",
    bytes="bytes_sent", ua="user_agent", log_type="access_log_type", flags="response_flags",
)


@dataclass(frozen=True)
class ClientKey:
    """Which field keys a client: a log field, optionally resolved through X-Forwarded-For."""

    field: str | None = None  # None: the format's own address field
    forwarded_for_field: str | None = None  # e.g. "http_x_forwarded_for"; used only with trusted proxies
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(frozen=True)
class ParsedBatch:
    """One batch of parsed events and the counts of the lines that produced it."""

    events: pd.DataFrame
    stats: IngestStats = field(default_factory=IngestStats)


def ended(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` without start records: the requests that finished (what request counts count).

    >>> b = parse_lines(['{"start_time":"2026-11-29T00:00:00.000Z","downstream_remote_address":"10.0.0.1:5",'
    ...                  '"access_log_type":"DownstreamStart","response_code":0,"duration":null}'], "envoy-json")
    >>> len(b.events), len(ended(b.events))
    (1, 0)
    """
    opened = events["status"].to_numpy() == OPENED
    return events[~opened] if opened.any() else events


def empty_events() -> pd.DataFrame:
    """A batch with no rows and the right column types."""
    return _frame({c: [] for c in EVENT_COLUMNS})


def _frame(cols: Mapping[str, list]) -> pd.DataFrame:
    end = np.asarray(cols["end"], dtype=np.float64)
    duration = np.asarray(cols["duration"], dtype=np.float64)
    start = np.where(np.isnan(duration), end, end - np.nan_to_num(duration))
    return pd.DataFrame({
        "client": np.asarray(cols["client"], dtype=object),
        "start": start,
        "end": end,
        "duration": duration,
        "method": np.asarray(cols["method"], dtype=object),
        "path": np.asarray(cols["path"], dtype=object),
        "query": np.asarray(cols["query"], dtype=object),
        "status": np.asarray(cols["status"], dtype=np.int32),
        "bytes": np.asarray(cols["bytes"], dtype=np.int64),
        "ua": np.asarray(cols["ua"], dtype=object),
    })


def _text(line: bytes | str) -> str:
    if isinstance(line, str):
        return line
    return line.decode("utf-8", errors="replace")


def _split_uri(uri: str) -> tuple[str, str]:
    path, _, query = uri.partition("?")
    return path, query


class _Bad(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _load_objects(lines: list[bytes | str]) -> list:
    """JSON-decode every line; a line that is not JSON becomes ``None``.

    One ``orjson.loads`` over the joined batch when every line is valid (the common case), else line
    by line. Invalid UTF-8 inside strings (nginx writes it raw) is replaced, not rejected.
    """
    if lines and all(isinstance(x, bytes) for x in lines):
        try:
            objs = orjson.loads(b"[" + b",".join(lines) + b"]")
            if len(objs) == len(lines):  # blank lines or "1,2" on one line would shift the count
                return objs
        except orjson.JSONDecodeError:
            pass
    out = []
    for line in lines:
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            if isinstance(line, bytes):
                try:
                    out.append(orjson.loads(line.decode("utf-8", errors="replace")))
                    continue
                except orjson.JSONDecodeError:
                    pass
            out.append(None)
    return out


_MISSING = ("", "-")


def _field(objs: list, name: str | None) -> pd.Series:
    if name is None:
        return pd.Series([None] * len(objs), dtype=object)
    return pd.Series([o.get(name) for o in objs], dtype=object)


def _missing(values: pd.Series) -> np.ndarray:
    return (values.isna() | values.isin(_MISSING)).to_numpy()


def _numbers(values: pd.Series) -> np.ndarray:
    """JSON numbers or numeric strings as floats; missing or unreadable values are NaN.

    nginx writes ``"0.1, 0.2"`` for retried upstreams: the first value counts.
    """
    as_text = values.astype(str)
    multi = as_text.str.contains(",", regex=False).to_numpy()
    if multi.any():
        values = values.copy()
        values[multi] = as_text[multi].str.split(",").str[0]
    bools = values.map(type).to_numpy() == bool
    out = np.array(pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan))
    out[bools] = np.nan
    return out


def _strings(values: pd.Series) -> np.ndarray:
    return values.where(values.notna(), "").astype(str).to_numpy(dtype=object)


def _strip_ports(addrs: pd.Series) -> pd.Series:
    """Envoy writes ``1.2.3.4:5678`` and ``[2001:db8::1]:5678``."""
    bracketed = addrs.str.startswith("[")
    one_colon = addrs.str.count(":") == 1
    out = addrs.copy()
    out[one_colon] = addrs[one_colon].str.rsplit(":", n=1).str[0]
    out[bracketed] = addrs[bracketed].str[1:].str.split("]", n=1).str[0]
    return out


def _parse_json_lines(lines: list[bytes | str], mapping: JsonlMapping, key: ClientKey,
                      envoy: bool) -> ParsedBatch:
    """Vectorised: decode all lines, pull each field as a column, validate columns, not lines."""
    objs = _load_objects(lines)
    n = len(objs)
    empty = np.array([not (x.strip() if isinstance(x, (bytes, str)) else x) for x in lines], dtype=bool)
    is_obj = np.array([type(o) is dict for o in objs], dtype=bool)
    invalid = np.array([o is None for o in objs], dtype=bool) & ~empty
    objs = [o if type(o) is dict else {} for o in objs]

    client_field = key.field or mapping.client
    client = _field(objs, client_field)
    raw_time = _field(objs, mapping.time)
    raw_duration = _field(objs, mapping.duration)
    raw_status = _field(objs, mapping.status)

    if mapping.time_unit == "iso8601":
        stamps = pd.to_datetime(raw_time.where(~_missing(raw_time), None), utc=True, errors="coerce",
                                format="ISO8601")
        t = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64, na_value=np.nan)
    else:
        t = _numbers(raw_time) / (1000.0 if mapping.time_unit == "ms" else 1.0)
    duration = _numbers(raw_duration) / (1000.0 if mapping.duration_unit == "ms" else 1.0)
    status = _numbers(raw_status)
    kind = _strings(_field(objs, mapping.log_type)) if mapping.log_type else np.full(n, "", dtype=object)
    start_record = np.isin(kind, _START_TYPES)
    other_record = ~start_record & ~np.isin(kind, _END_TYPES) & (not mapping.start_only)
    if start_record.any():  # no answer and no duration yet, whatever the line says
        if mapping.time_is == "end":  # nginx: written when the auth subrequest ended, ``request_time`` after the start
            t = np.where(start_record, t - np.nan_to_num(duration), t)
        status[start_record], duration[start_record] = OPENED, np.nan
    if mapping.flags:
        gone = (status == 0) & ~start_record & pd.Series(_strings(_field(objs, mapping.flags)), dtype=object) \
            .str.contains("DC", regex=False).to_numpy(dtype=bool)
        status[gone] = CLIENT_CLOSED

    # the first failing check names the reason, in this order
    checks = [
        (empty, "empty"),
        (invalid, "invalid_json"),
        (~is_obj, "not_an_object"),
        (_missing(client), f"missing_field:{client_field}"),
        (_missing(raw_time), f"missing_field:{mapping.time}"),
        (~np.isfinite(t), f"bad_value:{mapping.time}"),
        (~_missing(raw_duration) & ~(duration >= 0) & ~start_record, f"bad_value:{mapping.duration}"),
        (_missing(raw_status) & ~start_record, f"missing_field:{mapping.status}"),
        (~((status >= 100) & (status <= 999) & (np.floor(status) == status)) & ~start_record,
         f"bad_value:{mapping.status}"),
    ]
    # a well-formed record of another kind is passed over, whatever its fields: counted apart, never malformed
    passed = other_record & ~empty & ~invalid & is_obj
    skipped = dict(zip(*np.unique(kind[passed], return_counts=True))) if passed.any() else {}
    bad: dict[str, int] = {}
    rejected = passed.copy()
    for mask, reason in checks:
        hit = mask & ~rejected
        if hit.any():
            bad[reason] = bad.get(reason, 0) + int(hit.sum())
            rejected |= hit
    ok = ~rejected
    okl = ok.tolist()
    objs = [o for o, good in zip(objs, okl) if good]

    clients = client[ok].astype(str)
    if envoy:
        clients = _strip_ports(clients)
    if key.forwarded_for_field and key.trusted_proxies:
        forwarded = _strings(_field(objs, key.forwarded_for_field))
        clients = pd.Series([client_from_forwarded(c, f, key.trusted_proxies)
                             for c, f in zip(clients.tolist(), forwarded)], dtype=object)
    duration = duration[ok]
    t = t[ok]
    end = t if mapping.time_is == "end" else t + np.nan_to_num(duration)
    uri = pd.Series(_strings(_field(objs, mapping.uri)), dtype=object)
    split = uri.str.partition("?")
    nbytes = _numbers(_field(objs, mapping.bytes))
    frame = _frame({
        "client": clients.to_numpy(dtype=object),
        "end": end,
        "duration": duration,
        "method": _strings(_field(objs, mapping.method)),
        "path": split[0].to_numpy(dtype=object) if len(uri) else [],
        "query": split[2].to_numpy(dtype=object) if len(uri) else [],
        "status": status[ok].astype(np.int32),
        "bytes": np.nan_to_num(nbytes, nan=0.0).astype(np.int64),
        "ua": _strings(_field(objs, mapping.ua)),
    })
    return ParsedBatch(frame, IngestStats(n, len(frame), bad, {str(k): int(v) for k, v in skipped.items()}))


# $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = re.compile(
    r'^(\S+) \S+ (?:\S+|' + _QUOTED + r') \[([^\]]+)\] ' + _QUOTED + r' (\d{3}) (\d+|-)'
    r'(?: ' + _QUOTED + r' ' + _QUOTED + r')?'
)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_TIME_LOCAL_CACHE: dict[str, float] = {}


def parse_time_local(value: str) -> float:
    """nginx's ``$time_local`` (``17/May/2015:10:05:03 +0000``) as epoch seconds.

    >>> parse_time_local("17/May/2015:10:05:03 +0000")
    1431857103.0
    >>> parse_time_local("17/May/2015:12:05:03 +0200")
    1431857103.0
    """
    cached = _TIME_LOCAL_CACHE.get(value)
    if cached is not None:
        return cached
    try:
        day, mon, rest = value.split("/", 2)
        year, hh, mm, ss_tz = rest.split(":", 3)
        ss, tz = ss_tz.split(" ")
        sign = -1 if tz[0] == "-" else 1
        offset = sign * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)
        stamp = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), 0, 0, 0)) - offset
    except (ValueError, KeyError, IndexError):
        raise _Bad("bad_value:time_local") from None
    if len(_TIME_LOCAL_CACHE) > 100_000:
        _TIME_LOCAL_CACHE.clear()
    _TIME_LOCAL_CACHE[value] = float(stamp)
    return float(stamp)


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return value.replace('\\"', '"').replace("\\x22", '"').replace("\\\\", "\\")


def _parse_combined(lines: Iterable[bytes | str]) -> ParsedBatch:
    cols: dict[str, list] = {c: [] for c in EVENT_COLUMNS if c != "start"}
    bad: dict[str, int] = {}
    read = 0
    for line in lines:
        read += 1
        text = _text(line).rstrip("\r\n")
        try:
            if not text.strip():
                raise _Bad("empty")
            m = _COMBINED.match(text)
            if m is None:
                raise _Bad("no_match")
            client, _user, time_local, request, status, nbytes, _ref, ua = m.groups()
            end = parse_time_local(time_local)
        except _Bad as exc:
            bad[exc.reason] = bad.get(exc.reason, 0) + 1
            continue
        parts = _unescape(request).split(" ")
        if len(parts) >= 3 and parts[-1].startswith("HTTP/"):
            method, uri = parts[0], " ".join(parts[1:-1])
        elif len(parts) == 2:
            method, uri = parts
        else:  # garbage request lines (TLS handshakes to a plain port, ...) are still real requests
            method, uri = "", _unescape(request)
        path, query = _split_uri(uri)
        cols["client"].append(client)
        cols["end"].append(end)
        cols["duration"].append(math.nan)
        cols["method"].append(method)
        cols["path"].append(path)
        cols["query"].append(query)
        cols["status"].append(int(status))
        cols["bytes"].append(0 if nbytes == "-" else int(nbytes))
        cols["ua"].append("" if ua in ("-", None) else _unescape(ua))
    frame = _frame(cols)
    return ParsedBatch(frame, IngestStats(read, len(frame), bad))


def detect_format(sample: Iterable[bytes | str]) -> str:
    """Guess the format from the first non-empty lines; raise ``FormatError`` when nothing fits.

    >>> detect_format([b'{"msec":"1.0","remote_addr":"192.0.2.1","status":"200"}'])
    'nginx-json'
    >>> detect_format(['192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "curl"'])
    'nginx-combined'
    """
    votes: dict[str, int] = {}
    for line in sample:
        text = _text(line).strip()
        if not text:
            continue
        guess = None
        if text.startswith("{"):
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                if "downstream_remote_address" in obj or "response_code" in obj:
                    guess = "envoy-json"
                elif "remote_addr" in obj and ("msec" in obj or "time_iso8601" in obj):
                    guess = "nginx-json"
                else:
                    guess = "jsonl"
        elif _COMBINED.match(text):
            guess = "nginx-combined"
        if guess:
            votes[guess] = votes.get(guess, 0) + 1
    if not votes:
        raise FormatError("cannot detect the log format from the first lines; pass --format "
                          f"(one of {', '.join(FORMATS)})")
    return max(votes, key=votes.__getitem__)


def parse_lines(lines: Iterable[bytes | str], fmt: str = "auto", *, mapping: JsonlMapping | None = None,
                key: ClientKey | None = None) -> ParsedBatch:
    """Parse a batch of log lines of one format into events (see the module docstring).

    >>> b = parse_lines([b'{"msec":"100.5","remote_addr":"192.0.2.1","status":"204","request_time":"25.0",'
    ...                  b'"request_uri":"/v1/poll?cursor=3","request_method":"GET"}', b'{broken'])
    >>> b.events[["client", "start", "end", "status", "path", "query"]].values.tolist()
    [['192.0.2.1', 75.5, 100.5, 204, '/v1/poll', 'cursor=3']]
    >>> b.stats.read, b.stats.parsed, b.stats.malformed
    (2, 1, {'invalid_json': 1})
    """
    key = key or ClientKey()
    lines = list(lines)
    if fmt == "auto":
        try:
            fmt = detect_format(lines[:50])
        except FormatError:
            if all(not _text(x).strip() for x in lines):
                return ParsedBatch(empty_events(), IngestStats(len(lines), 0, {"empty": len(lines)} if lines else {}))
            raise
        if fmt == "jsonl" and mapping is None:
            raise FormatError("JSON lines without nginx or Envoy field names: give a jsonl field mapping")
    parsers: dict[str, Callable[[], ParsedBatch]] = {
        "nginx-json": lambda: _parse_json_lines(lines, NGINX_JSON, key, envoy=False),
        "envoy-json": lambda: _parse_json_lines(lines, ENVOY_JSON, key, envoy=True),
        "jsonl": lambda: _parse_json_lines(lines, mapping or NGINX_JSON, key, envoy=False),
        "nginx-combined": lambda: _parse_combined(lines),
    }
    if fmt not in parsers:
        raise FormatError(f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}")
    return parsers[fmt]()
