"""The operator subcommands of ``detector`` (cscli-like): ``decisions``, ``allowlist``, ``keys``, ``models``.

``decisions`` and ``allowlist`` talk either to the running service over HTTP with an admin key
(``--url``, ``--api-key`` or ``DETECTOR_URL`` / ``DETECTOR_API_KEY``) or, with ``--store PATH`` (or
``--config FILE``), to the SQLite store directly; a running service picks such writes up within
``api.watch_interval``. ``keys`` works on the store (a first admin key has to come from somewhere);
``models`` on the models folder (a running service reloads when ``current`` changes).

Part of the CLI: it reads the clock, and only ``detector.cli`` imports it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from detector.config import Settings, load_settings

DEFAULT_URL = "http://127.0.0.1:8080"


class OperatorError(Exception):
    """A one-line reason to stop (the CLI prints it and exits non-zero)."""


# -- two ways to reach decisions: HTTP or the store file -------------------------------------------------
class HttpOperator:
    """The admin API of a running service."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def _call(self, method: str, path: str, params: dict | None = None, body: dict | None = None):
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, False)})
        req = urllib.request.Request(f"{self.url}{path}" + (f"?{query}" if query else ""), method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"X-Api-Key": self.api_key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read())
                message = payload.get("message") or payload.get("detail")
            except ValueError:
                message = exc.reason
            raise OperatorError(f"{self.url} answered {exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise OperatorError(f"cannot reach {self.url}: {exc.reason}") from None

    def list_decisions(self, value=None, origin=None, type=None, all=False) -> list[dict]:
        return self._call("GET", "/v1/admin/decisions", {"value": value, "origin": origin, "type": type, "all": all})

    def add_decision(self, value, type, duration, reason) -> dict:
        return self._call("POST", "/v1/admin/decisions",
                          body={"value": value, "type": type, "duration": duration, "reason": reason})

    def delete_decision(self, decision_id: int) -> int:
        return int(self._call("DELETE", f"/v1/admin/decisions/{decision_id}")["nbDeleted"])

    def delete_value(self, value, origin=None) -> int:
        return int(self._call("DELETE", "/v1/admin/decisions", {"value": value, "origin": origin})["nbDeleted"])

    def list_allow(self) -> list[dict]:
        return self._call("GET", "/v1/admin/allowlist")

    def add_allow(self, value, reason) -> dict:
        return self._call("POST", "/v1/admin/allowlist", body={"value": value, "reason": reason})

    def delete_allow(self, value) -> bool:
        return bool(int(self._call("DELETE", "/v1/admin/allowlist", {"value": value})["nbDeleted"]))


class StoreOperator:
    """The store file itself, with the wall clock."""

    def __init__(self, store, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.limits = settings.decisions
        self.clock = clock

    def list_decisions(self, value=None, origin=None, type=None, all=False) -> list[dict]:
        from detector.api.schemas import admin_decision_out

        now = self.clock()
        found = self.store.decisions(now, include_inactive=all, value=value, origin=origin, type=type)
        return [admin_decision_out(d, now) for d in sorted(found, key=lambda d: d.id)]

    def add_decision(self, value, type, duration, reason) -> dict:
        from detector.api.schemas import admin_decision_out
        from detector.store import parse_duration

        seconds = self.limits.default_ttl if duration is None else parse_duration(duration)
        if seconds > self.limits.max_ttl:
            raise OperatorError(f"duration over decisions.max_ttl ({self.limits.max_ttl:g} s)")
        now = self.clock()
        author = f"cli:{os.environ.get('USER', 'operator')}"
        return admin_decision_out(self.store.add_decision(value, type, seconds, now, reason=reason, author=author), now)

    def delete_decision(self, decision_id: int) -> int:
        return int(self.store.lift(decision_id, self.clock()) is not None)

    def delete_value(self, value, origin=None) -> int:
        return len(self.store.lift_value(value, self.clock(), origin))

    def list_allow(self) -> list[dict]:
        from detector.api.schemas import allow_out

        return [allow_out(e) for e in self.store.allowlist()]

    def add_allow(self, value, reason) -> dict:
        from detector.api.schemas import allow_out

        entry, lifted = self.store.add_allow(value, self.clock(), reason)
        return {**allow_out(entry), "lifted": [d.id for d in lifted]}

    def delete_allow(self, value) -> bool:
        return self.store.remove_allow(value)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _store(args: argparse.Namespace):
    from detector.store import store_from_settings

    settings = _settings(args)
    path = args.store or settings.store.path
    if path != ":memory:" and not Path(path).exists() and args.command != "keys":
        raise OperatorError(f"no store at {path} (give --store PATH, or --url to reach a running service)")
    return store_from_settings(settings, path)


def _operator(args: argparse.Namespace):
    url = args.url or os.environ.get("DETECTOR_URL")
    if args.store or (args.config and not url):
        return StoreOperator(_store(args), _settings(args))
    key = args.api_key or os.environ.get("DETECTOR_API_KEY")
    if not key:
        raise OperatorError("give --api-key (or set DETECTOR_API_KEY) to reach the service, "
                            "or --store PATH to work on the store file")
    return HttpOperator(url or DEFAULT_URL, key)


# -- output ------------------------------------------------------------------------------------------------
def _emit(args: argparse.Namespace, data, columns: list[tuple[str, Callable[[dict], object]]]) -> None:
    if args.output == "json":
        print(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        print("(none)")
        return
    table = [[h for h, _ in columns]] + [[str(get(r)) for _, get in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


_DECISION_COLUMNS = [
    ("ID", lambda d: d["id"]), ("ORIGIN", lambda d: d["origin"]), ("SCOPE:VALUE", lambda d: f"{d['scope']}:{d['value']}"),
    ("TYPE", lambda d: d["type"]), ("EXPIRES IN", lambda d: d["duration"] if d["active"] else "ended"),
    ("UNTIL", lambda d: d["until"]), ("SIMULATED", lambda d: "yes" if d["simulated"] else ""),
    ("REASON", lambda d: d["scenario"]),
]
_ALLOW_COLUMNS = [("ID", lambda e: e["id"]), ("VALUE", lambda e: e["value"]), ("ORIGIN", lambda e: e["origin"]),
                  ("REASON", lambda e: e["reason"])]


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if epoch else ""


# -- decisions -------------------------------------------------------------------------------------------
def cmd_decisions(args: argparse.Namespace) -> int:
    op = _operator(args)
    if args.action == "list":
        _emit(args, op.list_decisions(args.ip or args.range or args.value, args.origin, args.type, args.all),
              _DECISION_COLUMNS)
    elif args.action == "add":
        value = args.ip or args.range or args.value
        if not value:
            raise OperatorError("give --ip IP or --range CIDR")
        _emit(args, op.add_decision(value, args.type or "ban", args.duration, args.reason), _DECISION_COLUMNS)
    else:
        if args.id is not None:
            n = op.delete_decision(args.id)
        elif args.ip or args.range or args.value:
            n = op.delete_value(args.ip or args.range or args.value, args.origin)
        else:
            raise OperatorError("give --id N, --ip IP or --range CIDR")
        print(f"{n} decision(s) deleted")
    return 0


def cmd_allowlist(args: argparse.Namespace) -> int:
    op = _operator(args)
    if args.action == "list":
        _emit(args, op.list_allow(), _ALLOW_COLUMNS)
    elif args.action == "add":
        entry = op.add_allow(args.value, args.reason)
        _emit(args, entry, _ALLOW_COLUMNS)
        if entry["lifted"] and args.output != "json":
            print(f"lifted decision(s) {', '.join(map(str, entry['lifted']))}")
    elif not op.delete_allow(args.value):
        raise OperatorError(f"{args.value} is not on the stored allowlist")
    else:
        print(f"{args.value} deleted from the allowlist")
    return 0


# -- keys --------------------------------------------------------------------------------------------------
def cmd_keys(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        if args.action == "add":
            key, token = store.add_key(args.name, args.role, time.time())
            print(token)
            if args.output != "json":
                print(f"({args.role} key {key.name!r}: this token is shown once; keep it)", file=sys.stderr)
        elif args.action == "list":
            _emit(args, [{"id": k.id, "name": k.name, "role": k.role, "created": _when(k.created_at)}
                         for k in store.keys()],
                  [("ID", lambda k: k["id"]), ("NAME", lambda k: k["name"]), ("ROLE", lambda k: k["role"]),
                   ("CREATED", lambda k: k["created"])])
        elif not store.revoke_key(args.name):
            raise OperatorError(f"no API key named {args.name!r}")
        else:
            print(f"key {args.name!r} revoked")
    finally:
        store.close()
    return 0


# -- models ------------------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from detector.lifecycle import list_models, promote, rollback

    models_dir = Path(args.models_dir or _settings(args).models_dir)
    if args.action == "list":
        rows = [{"version": m.version, "current": m.current, "features": len(m.card.get("features", [])),
                 "throttle": m.card.get("thresholds", {}).get("throttle"),
                 "block": m.card.get("thresholds", {}).get("block"),
                 "trained_at": m.card.get("training", {}).get("trained_at", "")} for m in list_models(models_dir)]
        _emit(args, rows, [("VERSION", lambda m: m["version"]), ("CURRENT", lambda m: "*" if m["current"] else ""),
                           ("FEATURES", lambda m: m["features"]), ("THROTTLE", lambda m: _num(m["throttle"])),
                           ("BLOCK", lambda m: _num(m["block"])), ("TRAINED", lambda m: m["trained_at"])])
    elif args.action == "promote":
        previous = promote(models_dir, args.version, _settings(args).policy.to_config())
        print(f"{models_dir / 'current'} -> {args.version} (was {previous or 'unset'})")
    else:
        version = rollback(models_dir, _settings(args).policy.to_config())
        print(f"{models_dir / 'current'} -> {version}")
    return 0


def _num(v) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else ""


# -- the parsers -------------------------------------------------------------------------------------------
def add_parsers(sub) -> None:
    """Add ``decisions``, ``allowlist``, ``keys`` and ``models`` to the ``detector`` parser."""

    def common(sp, http: bool = True) -> None:
        sp.add_argument("--config", default=None, help="TOML config file (store.path, decisions.*)")
        sp.add_argument("--store", default=None, metavar="PATH", help="work on this SQLite store file directly")
        if http:
            sp.add_argument("--url", default=None, help=f"the running service (env DETECTOR_URL; default {DEFAULT_URL})")
            sp.add_argument("--api-key", default=None, help="an admin key (env DETECTOR_API_KEY)")
        sp.add_argument("-o", "--output", choices=("human", "json"), default="human")

    def target(sp) -> None:
        sp.add_argument("--ip", default=None, help="an IP address")
        sp.add_argument("--range", default=None, metavar="CIDR", help="a CIDR")
        sp.add_argument("--value", default=None, help=argparse.SUPPRESS)

    d = sub.add_parser("decisions", help="list, add and delete decisions (cscli-like)")
    dsub = d.add_subparsers(dest="action", required=True)
    dl = dsub.add_parser("list", help="active decisions (simulated ones included)")
    target(dl)
    dl.add_argument("--origin", choices=("model", "manual"), default=None)
    dl.add_argument("--type", choices=("ban", "throttle", "allow"), default=None)
    dl.add_argument("--all", action="store_true", help="also decisions that ended and are still kept")
    da = dsub.add_parser("add", help="a manual decision on an IP or CIDR")
    target(da)
    da.add_argument("--type", choices=("ban", "throttle", "allow"), default="ban")
    da.add_argument("--duration", default=None, help="e.g. 4h, 30m, 1h30m (default decisions.default_ttl)")
    da.add_argument("--reason", default="", help="why (shown as the scenario)")
    dd = dsub.add_parser("delete", help="lift decisions now")
    target(dd)
    dd.add_argument("--id", type=int, default=None)
    dd.add_argument("--origin", choices=("model", "manual"), default=None)
    for sp in (dl, da, dd):
        common(sp)
    d.set_defaults(func=cmd_decisions)

    a = sub.add_parser("allowlist", help="IPs and CIDRs that are never throttled or blocked")
    asub = a.add_subparsers(dest="action", required=True)
    al = asub.add_parser("list")
    aa = asub.add_parser("add", help="allowlist an IP or CIDR (lifts the decisions inside it)")
    aa.add_argument("value", metavar="IP_OR_CIDR")
    aa.add_argument("--reason", default="")
    ad = asub.add_parser("delete")
    ad.add_argument("value", metavar="IP_OR_CIDR")
    for sp in (al, aa, ad):
        common(sp)
    a.set_defaults(func=cmd_allowlist)

    k = sub.add_parser("keys", help="API keys: bouncer (read decisions) and admin (write)")
    ksub = k.add_subparsers(dest="action", required=True)
    ka = ksub.add_parser("add", help="make a key; prints its token once")
    ka.add_argument("name")
    ka.add_argument("--role", choices=("bouncer", "admin"), required=True)
    kl = ksub.add_parser("list")
    kr = ksub.add_parser("revoke")
    kr.add_argument("name")
    for sp in (ka, kl, kr):
        common(sp, http=False)
    k.set_defaults(func=cmd_keys)

    m = sub.add_parser("models", help="model artifacts: list, promote, roll back")
    msub = m.add_subparsers(dest="action", required=True)
    ml = msub.add_parser("list")
    mp = msub.add_parser("promote", help="make VERSION current (refused if its features do not match)")
    mp.add_argument("version")
    mr = msub.add_parser("rollback", help="make the previously current version current again")
    for sp in (ml, mp, mr):
        sp.add_argument("--models-dir", default=None, help="default: models_dir from the config (models)")
        sp.add_argument("--config", default=None)
        sp.add_argument("-o", "--output", choices=("human", "json"), default="human")
    m.set_defaults(func=cmd_models)
