"""Run a committed notebook headless with nbclient, its parameters overridden papermill-style.

The cell tagged ``parameters`` keeps its defaults; a cell tagged ``injected-parameters`` with the test's
values is inserted right after it (as ``papermill -p`` does), so the notebook file itself is not edited.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def inject(nb, params: dict) -> None:
    """Insert a cell assigning ``params`` after the ``parameters`` cell (which must exist)."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in params.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)


def run(name: str, params: dict, cwd: Path, timeout: int = 120):
    """Execute ``notebooks/<name>`` with ``params`` in ``cwd``; return the executed notebook.

    Raises ``nbclient.exceptions.CellExecutionError`` naming the failing cell if any cell fails.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    inject(nb, params)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs_text(nb) -> str:
    """Every text output of the executed notebook, joined (streams, plain-text results, errors)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            else:
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def images(nb) -> int:
    """How many PNG images the executed notebook shows."""
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
