"""Progress on standard error for long reads: ``progress(bytes_done, bytes_total)``."""

from __future__ import annotations

import sys
from typing import Callable, TextIO


def stderr_progress(label: str, stream: TextIO | None = None) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` that rewrites one line on a terminal, else prints every 10 %."""
    out = stream or sys.stderr
    tty = out.isatty()
    last = [-1]

    def report(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        step = pct if tty else pct // 10 * 10
        if step == last[0]:
            return
        last[0] = step
        text = f"{label}: {pct:3d}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)"
        out.write(f"\r{text}" + ("\n" if pct >= 100 else "") if tty else text + "\n")
        out.flush()

    return report
