"""Handing a freshly trained model over: its version name, asking a running service to reload, and the
command lines that do the same by hand.

A running service serves what its ``model`` setting names (by default ``models/current``); it reloads
when that changes (within ``api.watch_interval``) or at once on ``POST /v1/admin/model/reload`` with an
admin key. ``request_reload`` makes that call and never raises: a service that is not running is an
answer ("unreachable"), not an error, for a notebook that may run anywhere.
"""

from __future__ import annotations

import json
import re
import shlex
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from detector.model import CARD_FILE, load_artifact, resolve

RELOAD_PATH = "/v1/admin/model/reload"
API_KEY_HEADER = "X-Api-Key"


def next_version(models_dir: str | Path, day: str) -> str:
    """``<day>.<n>`` with the first ``n`` from 1 that no artifact in ``models_dir`` uses yet.

    ``day`` is given (e.g. the training data's last day, or today's date read by the caller).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", day):
        raise ValueError(f"bad version prefix {day!r}")
    models_dir = Path(models_dir)
    n = 1
    while (models_dir / f"{day}.{n}").exists():
        n += 1
    return f"{day}.{n}"


@dataclass(frozen=True)
class ReloadOutcome:
    """What came of asking a service to reload: ``reached`` it at all, ``ok`` if it now serves the model."""

    reached: bool
    ok: bool
    message: str
    version: str | None = None
    previous: str | None = None


def request_reload(url: str, api_key: str, timeout: float = 5.0) -> ReloadOutcome:
    """``POST {url}/v1/admin/model/reload`` with the admin key; the outcome in words, never an exception."""
    req = urllib.request.Request(url.rstrip("/") + RELOAD_PATH, method="POST", data=b"",
                                 headers={API_KEY_HEADER: api_key})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = _json(resp.read())
    except urllib.error.HTTPError as exc:
        body = _json(exc.read())
        detail = body.get("message") or body.get("detail") or exc.reason
        return ReloadOutcome(True, False, f"{url} answered {exc.code}: {detail}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return ReloadOutcome(False, False, f"cannot reach {url}: {reason}")
    version, previous = body.get("version"), body.get("previous")
    return ReloadOutcome(True, True, f"{url} now serves {version} (was {previous})", version, previous)


def _json(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class CurrentModel:
    """The model a models folder's ``current`` names, or why it cannot be used (``problem``)."""

    path: Path
    model: object | None = None
    card: dict | None = None
    problem: str = ""

    @property
    def version(self) -> str:
        return str((self.card or {}).get("version", "current"))


def load_current(models_dir: str | Path) -> CurrentModel:
    """Load what ``models_dir/current`` names; a missing or refused artifact (another feature schema,
    say) comes back with the reason instead of raising, so a comparison can be skipped in words."""
    path = resolve(models_dir)
    if not (path / CARD_FILE).is_file():
        return CurrentModel(path, problem=f"no current model in {models_dir}: nothing to compare with")
    try:
        model, card = load_artifact(path)
    except Exception as exc:  # noqa: BLE001 - whatever stops it loading is the answer, in words
        reason = str(exc) if len(str(exc)) <= 300 else str(exc)[:300] + " ..."
        return CurrentModel(path, problem=f"{path} cannot be used by this code: {type(exc).__name__}: {reason}")
    return CurrentModel(path, model, card)


def cli_commands(models_dir: str | Path, version: str, logs: Sequence[str | Path] = (),
                 fmt: str = "auto") -> list[str]:
    """The shell commands that make ``version`` the served model without a notebook: promote the saved
    artifact, or train the same logs from the command line straight into ``current``."""
    models_dir = str(models_dir)
    out = [f"detector models promote {shlex.quote(version)} --models-dir {shlex.quote(models_dir)}"]
    if logs:
        out.append(f"detector train {' '.join(shlex.quote(str(p)) for p in logs)}"
                   + (f" --format {fmt}" if fmt != "auto" else "")
                   + f" --out {shlex.quote(str(Path(models_dir) / version))} --set-current")
    return out


def hand_over(models_dir: str | Path, version: str, *, promote: bool, url: str | None = None,
              api_key: str | None = None, logs: Sequence[str | Path] = (), fmt: str = "auto") -> list[str]:
    """Make ``version`` current when ``promote`` (checked to load first, with a history for ``detector
    models rollback``), then ask the service at ``url`` to reload when an admin key is given. Returns
    what happened, a line each, with the command lines for whatever is left to a person."""
    from detector.lifecycle import promote as make_current

    models_dir = Path(models_dir).resolve()  # command lines that work from any folder
    current = models_dir / "current"
    by_hand = ["  " + c for c in cli_commands(models_dir, version, logs, fmt)]
    if not promote:
        return [f"{version} is saved in {models_dir} but not made current (PROMOTE is False). To serve it:",
                *by_hand, f"  then: detector serve --model {current}   (a running service reloads by itself)"]
    previous = make_current(models_dir, version)
    lines = [f"{current} -> {version} (was {previous or 'unset'})"]
    if not url or not api_key:
        return lines + ["No service URL and admin key given, so no service was told: one that serves "
                        f"{current} reloads it within api.watch_interval seconds, or on its next start."]
    outcome = request_reload(url, api_key)
    lines.append(outcome.message)
    if outcome.ok and outcome.version != version:
        lines.append(f"The service serves {outcome.version}, not {version}: its model setting names another "
                     f"models folder than {models_dir}. On its machine:")
        lines += by_hand[:1]
    elif not outcome.reached:
        lines += [f"No running service was told. One started with --model {current} serves {version}; "
                  "for a service whose models folder is elsewhere:", *by_hand]
    elif not outcome.ok:
        lines.append(f"The service keeps its model for now; {current} names {version}, which it loads when it "
                     "next sees the change or starts.")
    return lines
