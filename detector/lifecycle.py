"""Model lifecycle: which artifacts a models folder holds, which one ``current`` names, promoting and
rolling back (with a history), and a cheap signature of what ``current`` names, for hot reload.

Promotion loads the artifact first, so a model whose feature schema does not match this code
(``ModelSchemaError``) never becomes current. ``history`` beside ``current`` lists the versions that
were current before, oldest first; ``rollback`` goes back one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from detector.model import ARTIFACT_FILE, CARD_FILE, CURRENT, load_artifact, resolve, set_current
from detector.pipeline import serving_thresholds
from detector.policy import PolicyConfig

HISTORY = "history"


@dataclass(frozen=True)
class ModelEntry:
    version: str
    current: bool
    card: dict


def current_version(models_dir: str | Path) -> str | None:
    pointer = Path(models_dir) / CURRENT
    return pointer.read_text().strip() if pointer.is_file() else None


def list_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every artifact folder in ``models_dir``, by version."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise FileNotFoundError(f"no models folder {models_dir}")
    current = current_version(models_dir)
    out = []
    for folder in sorted(p for p in models_dir.iterdir() if (p / CARD_FILE).is_file()):
        try:
            card = json.loads((folder / CARD_FILE).read_text())
        except ValueError:
            card = {}
        out.append(ModelEntry(folder.name, folder.name == current, card))
    return out


def _history(models_dir: Path) -> list[str]:
    path = models_dir / HISTORY
    return [v for v in path.read_text().split() if v] if path.is_file() else []


def _write_history(models_dir: Path, versions: list[str]) -> None:
    tmp = models_dir / (HISTORY + ".tmp")
    tmp.write_text("".join(v + "\n" for v in versions[-50:]))
    tmp.replace(models_dir / HISTORY)


def promote(models_dir: str | Path, version: str, policy: PolicyConfig | None = None) -> str | None:
    """Make ``version`` current after checking it loads (and, given the ``policy`` it will serve under, that
    it can serve its false-positive targets); returns the version it replaced."""
    models_dir = Path(models_dir)
    _check(models_dir / version, policy)  # raises ModelSchemaError / FileNotFoundError / ValueError
    previous = current_version(models_dir)
    if previous == version:
        return previous
    set_current(models_dir, version)
    if previous:
        _write_history(models_dir, _history(models_dir) + [previous])
    return previous


def _check(path: Path, policy: PolicyConfig | None) -> None:
    model, _card = load_artifact(path)
    if policy is not None:
        serving_thresholds(model, policy)


def rollback(models_dir: str | Path, policy: PolicyConfig | None = None) -> str:
    """Make the previously current version current again (checked as ``promote`` checks); returns it."""
    models_dir = Path(models_dir)
    history = _history(models_dir)
    current = current_version(models_dir)
    while history:
        version = history.pop()
        if version != current and (models_dir / version / CARD_FILE).is_file():
            _check(models_dir / version, policy)
            set_current(models_dir, version)
            _write_history(models_dir, history)
            return version
    raise FileNotFoundError(f"nothing to roll back to: {models_dir / HISTORY} names no earlier model")


def signature(path: str | Path) -> tuple | None:
    """What ``path`` (an artifact or a ``current`` pointer) names now, and when its files last changed."""
    try:
        folder = resolve(path)
        stats = [(folder / name).stat() for name in (CARD_FILE, ARTIFACT_FILE)]
    except OSError:
        return None
    return (str(folder.resolve()),) + tuple((s.st_mtime_ns, s.st_size) for s in stats)
