"""Simulated logs for a first run of the notebooks, made only when they are not there yet.

``notebooks/retrain.ipynb`` and ``explore.ipynb`` point at a simulated training day and a labelled day
by default, so they run top to bottom on a fresh clone; with ``DEMO_DATA = False`` (or once real logs
are configured) nothing is simulated.
"""

from __future__ import annotations

from pathlib import Path

LOG_FILE = "access.log"
ENVOY_LOG_FILE = "access_envoy.log"


def sample_log(folder: str | Path, *, minutes: float = 60, seed: int = 7, attacks: bool = True,
               clients: int = 2000, attackers: int = 40, envoy: bool = False) -> Path:
    """``folder/access.log``, simulated first (with ``labels.csv`` beside it) when it does not exist;
    with ``envoy``, ``folder/access_envoy.log`` (the same requests as Envoy logs them, start records too).

    The same arguments give the same files (``detector simulate``), so a notebook re-run sees the
    same day.
    """
    from detector.sim import simulate

    log = Path(folder) / (ENVOY_LOG_FILE if envoy else LOG_FILE)
    if not log.is_file():
        simulate(folder, minutes=minutes, seed=seed, clients=clients, attackers=attackers, attacks=attacks,
                 envoy=envoy)
    return log
