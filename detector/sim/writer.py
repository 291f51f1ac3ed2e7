"""Writers: ``access.log`` (nginx JSON, ``escape=json``), ``access_combined.log`` (nginx combined),
optionally ``access_envoy.log`` (Envoy JSON with start records) and ``access_starts.log`` (``access.log``
with nginx's start lines), ``labels.csv`` and ``meta.json``.

Both logs come from the same columns, in the same order, as nginx would write them: values of the
JSON log are strings; the combined log escapes ``"``, ``\\``, control bytes and bytes >= 0x7f as
``\\xHH``. Strings may carry raw non-UTF-8 bytes (as surrogate escapes); both logs write those
bytes as received, like nginx does.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np
import orjson

from .recorder import METHODS, PROTOCOLS, REFERERS

_SURROGATE = re.compile("([\udc80-\udcff])")
_COMBINED_ESCAPE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')

_JSON_LINE = (b'{"msec":"%d.%03d","time_iso8601":"%s","remote_addr":"%s","request_method":"%s",'
              b'"request_uri":%s,"status":"%d","body_bytes_sent":"%d","request_time":"%d.%03d",'
              b'"upstream_response_time":"%s","http_user_agent":%s,"request_id":"%s",'
              b'"connection":"%d","connection_requests":"%d"}\n')
_COMBINED_LINE = b'%s - - [%s] "%s %s %s" %d %d "%s" "%s"\n'
_NGINX_START = (b'{"phase":"start","msec":"%d.%03d","remote_addr":"%s","request_method":"%s","request_uri":%s,'
                b'"status":"200","request_time":"0.000","http_user_agent":%s,"request_id":"%s"}\n')
_ENVOY_START = (b'{"start_time":"%s.%03dZ","access_log_type":"DownstreamStart","downstream_remote_address":"%s:%d",'
                b'"method":"%s","path":%s,"user_agent":%s,"x_request_id":"%s","response_code":0,'
                b'"response_flags":"-","duration":null,"bytes_sent":0}\n')
_ENVOY_END = (b'{"start_time":"%s.%03dZ","access_log_type":"DownstreamEnd","downstream_remote_address":"%s:%d",'
              b'"method":"%s","path":%s,"user_agent":%s,"x_request_id":"%s","response_code":%d,'
              b'"response_flags":"%s","duration":%d,"bytes_sent":%d}\n')


def json_string(s: str) -> bytes:
    """``s`` as a JSON string the way nginx ``escape=json`` writes it (raw bytes stay raw)."""
    try:
        return orjson.dumps(s)
    except orjson.JSONEncodeError:
        out = [b'"']
        for part in _SURROGATE.split(s):
            if len(part) == 1 and "\udc80" <= part <= "\udcff":
                out.append(bytes([ord(part) - 0xDC00]))
            elif part:
                out.append(orjson.dumps(part)[1:-1])
        out.append(b'"')
        return b"".join(out)


def _json_uri(u: str) -> bytes:
    """A URI as a JSON string: orjson for the usual ASCII, ``json_string`` for raw bytes."""
    return orjson.dumps(u) if u.isascii() else json_string(u)


def _written_order(start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
    """The order a gateway writes each request's start line (rows ``0..n-1``) and end line (``n..2n-1``):
    by time, a start before an end of the same millisecond."""
    n = len(start_ms)
    return np.lexsort((np.repeat(np.array([0, 1], dtype=np.int8), n), np.concatenate([start_ms, end_ms])))


def combined_escape(s: str) -> bytes:
    """``s`` as nginx's default log escaping writes it: ``"`` becomes ``\\x22`` and so on."""
    b = s.encode("utf-8", "surrogateescape")
    if not _COMBINED_ESCAPE.search(b):
        return b
    return _COMBINED_ESCAPE.sub(lambda m: b"\\x%02X" % m.group()[0], b)


def _time_tables(sec0: int, sec1: int) -> tuple[list[bytes], list[bytes]]:
    """``$time_iso8601`` and ``$time_local`` (UTC) for every second in ``[sec0, sec1]``."""
    iso, local = [], []
    for s in range(sec0, sec1 + 1):
        tm = time.gmtime(s)
        iso.append(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", tm).encode())
        local.append(time.strftime("%d/%b/%Y:%H:%M:%S +0000", tm).encode())
    return iso, local


def write_logs(json_path: Path, combined_path: Path, *, end_ms: np.ndarray, dur_ms: np.ndarray,
               ups_ms: np.ndarray, client: np.ndarray, addrs: list[str], method: np.ndarray, uri: np.ndarray,
               status: np.ndarray, nbytes: np.ndarray, ua: np.ndarray, agents: list[str], referer: np.ndarray,
               proto: np.ndarray, request_ids: bytes, conn: np.ndarray, conn_reqs: np.ndarray,
               chunk: int = 50_000) -> None:
    """Write rows (already in log order) to both logs. ``ups_ms`` < 0 means no upstream ("")."""
    n = len(end_ms)
    if n:
        iso, local = _time_tables(int(end_ms.min()) // 1000, int(end_ms.max()) // 1000)
        sec0 = int(end_ms.min()) // 1000
    addr_b = [a.encode() for a in addrs]
    ua_json = [json_string(a) for a in agents]
    ua_comb = [combined_escape(a) if a else b"-" for a in agents]
    meth_b = [m.encode() for m in METHODS]
    proto_b = [p.encode() for p in PROTOCOLS]
    ref_b = [r.encode() if r else b"-" for r in REFERERS]
    with open(json_path, "wb") as fj, open(combined_path, "wb") as fc:
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            e_sec, e_ms = np.divmod(end_ms[a:b], 1000)
            d_sec, d_ms = np.divmod(dur_ms[a:b], 1000)
            ups = [b"%d.%03d" % divmod(x, 1000) if x >= 0 else b"" for x in ups_ms[a:b].tolist()]
            out_j, out_c = [], []
            for (sec, ms, ds, dm, up, c, m, u, st, nb, ag, rf, pr, cn, cr, i) in zip(
                    e_sec.tolist(), e_ms.tolist(), d_sec.tolist(), d_ms.tolist(), ups, client[a:b].tolist(),
                    method[a:b].tolist(), uri[a:b].tolist(), status[a:b].tolist(), nbytes[a:b].tolist(),
                    ua[a:b].tolist(), referer[a:b].tolist(), proto[a:b].tolist(), conn[a:b].tolist(),
                    conn_reqs[a:b].tolist(), range(32 * a, 32 * b, 32)):
                uj = _json_uri(u)
                out_j.append(_JSON_LINE % (sec, ms, iso[sec - sec0], addr_b[c], meth_b[m], uj, st, nb, ds, dm, up,
                                           ua_json[ag], request_ids[i:i + 32], cn, cr))
                # orjson escapes exactly what needs \\xHH in the combined log with a backslash.
                ub = uj[1:-1] if uj.isascii() and b"\\" not in uj else combined_escape(u)
                out_c.append(_COMBINED_LINE % (addr_b[c], local[sec - sec0], meth_b[m], ub, proto_b[pr], st, nb,
                                               ref_b[rf], ua_comb[ag]))
            fj.write(b"".join(out_j))
            fc.write(b"".join(out_c))


def write_envoy_log(path: Path, *, start_ms: np.ndarray, dur_ms: np.ndarray, client: np.ndarray, addrs: list[str],
                    method: np.ndarray, uri: np.ndarray, status: np.ndarray, nbytes: np.ndarray, ua: np.ndarray,
                    agents: list[str], request_ids: bytes, conn: np.ndarray, chunk: int = 50_000) -> None:
    """The same requests as Envoy writes them with ``flush_access_log_on_new_request``: a
    ``DownstreamStart`` record when each request starts (response code 0, no duration) and a
    ``DownstreamEnd`` record when it ends, both with the request's ``start_time``, in the order they
    are written (by time; a start before an end of the same millisecond). A client that went away
    before its answer (nginx's 499) is response code 0 with flag ``DC``, as Envoy logs it; the port is
    the connection's."""
    n = len(start_ms)
    order = _written_order(start_ms, start_ms + dur_ms)
    if n:
        sec0 = int(start_ms.min()) // 1000
        iso = [time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)).encode()
               for s in range(sec0, int(start_ms.max()) // 1000 + 1)]
    addr_b = [(f"[{a}]" if ":" in a else a).encode() for a in addrs]  # Envoy brackets an IPv6 address
    ua_json = [json_string(a) for a in agents]
    meth_b = [m.encode() for m in METHODS]
    port = (1024 + conn % 60000).astype(np.int64)
    with open(path, "wb") as f:
        for a in range(0, 2 * n, chunk):
            rows = order[a:a + chunk]
            req = np.where(rows >= n, rows - n, rows)
            sec, ms = np.divmod(start_ms[req], 1000)
            out = []
            for (end, i, sc, m, c, mt, u, st, nb, ag, d, pt) in zip(
                    (rows >= n).tolist(), req.tolist(), sec.tolist(), ms.tolist(), client[req].tolist(),
                    method[req].tolist(), uri[req].tolist(), status[req].tolist(), nbytes[req].tolist(),
                    ua[req].tolist(), dur_ms[req].tolist(), port[req].tolist()):
                uj = _json_uri(u)
                rid = request_ids[32 * i:32 * i + 32]
                if end:
                    gone = st == 499
                    out.append(_ENVOY_END % (iso[sc - sec0], m, addr_b[c], pt, meth_b[mt], uj, ua_json[ag], rid,
                                             0 if gone else st, b"DC" if gone else b"-", d, nb))
                else:
                    out.append(_ENVOY_START % (iso[sc - sec0], m, addr_b[c], pt, meth_b[mt], uj, ua_json[ag], rid))
            f.write(b"".join(out))


def write_nginx_starts(path: Path, json_path: Path, *, end_ms: np.ndarray, dur_ms: np.ndarray, client: np.ndarray,
                       addrs: list[str], method: np.ndarray, uri: np.ndarray, ua: np.ndarray, agents: list[str],
                       request_ids: bytes, started: np.ndarray | None = None) -> None:
    """``json_path``'s lines (``write_logs``' rows, in the same order) with a start line of each request
    before them, as ``deploy/nginx/nginx.conf.template`` has nginx write it from the request's auth
    subrequest (``"phase":"start"``; the answer taken to come at once: ``$msec`` at the request's start,
    ``$request_time`` 0), in the order written (by time; a start before an end of the same millisecond).
    Rows where ``started`` is false get no start line (a connection that never sent a request line is
    never authorised: nginx logs only its 408)."""
    with open(json_path, "rb") as f:
        ends = f.read().splitlines(keepends=True)
    n = len(ends)
    if n != len(end_ms):
        raise ValueError(f"{json_path} has {n} lines for {len(end_ms)} rows")
    start_ms = end_ms - dur_ms
    sec, ms = np.divmod(start_ms, 1000)
    addr_b = [a.encode() for a in addrs]
    ua_json = [json_string(a) for a in agents]
    meth_b = [m.encode() for m in METHODS]
    starts = [_NGINX_START % (sc, m, addr_b[c], meth_b[mt], _json_uri(u), ua_json[ag], request_ids[32 * i:32 * i + 32])
              for i, (sc, m, c, mt, u, ag) in enumerate(zip(sec.tolist(), ms.tolist(), client.tolist(),
                                                            method.tolist(), uri.tolist(), ua.tolist()))]
    order = _written_order(start_ms, end_ms)
    if started is not None:
        order = order[(order >= n) | np.asarray(started, dtype=bool)[order % n]]
    lines = starts + ends
    with open(path, "wb") as f:
        for a in range(0, 2 * n, 100_000):
            f.write(b"".join(lines[i] for i in order[a:a + 100_000].tolist()))


LABEL_COLUMNS = ("client", "label", "class", "population", "attack_start", "attack_end", "active_in_outage",
                 "requests", "intensity", "network")


def write_labels(path: Path, rows: list[dict]) -> None:
    """One row per client key (``LABEL_COLUMNS``; times as epoch seconds with 3 decimals, "" when
    not applicable)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_meta(path: Path, meta: dict) -> None:
    path.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")
