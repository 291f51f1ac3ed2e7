"""The traffic simulator: labelled long-poll traffic written as nginx logs.

``simulate(out_dir, minutes=60, seed=0, ...)`` writes ``access.log`` (nginx JSON),
``access_combined.log``, ``labels.csv`` and ``meta.json``; see ``traffic.py``. Normal populations
live in ``populations.py``, abusive ones in ``attacks.py``, the server in ``service.py``.
"""

from .attacks import ATTACK_CLASSES
from .traffic import NORMAL_CLASSES, SimSummary, simulate

__all__ = ["ATTACK_CLASSES", "NORMAL_CLASSES", "SimSummary", "simulate"]
