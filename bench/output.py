"""Where a benchmark's results go: ``NAME-LABEL.json`` and ``NAME-LABEL.png`` in its ``--out`` folder
(``bench/results/`` by default), the label made safe for a file name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def stem(name: str, label: str) -> str:
    """``name-label``, every character of the label that is not a letter or a digit made a hyphen."""
    return f"{name}-" + "".join(ch if ch.isalnum() else "-" for ch in label)


def write(out: Path, name: str, document: Any, draw: Callable[[Path], None] | None = None) -> None:
    """``document`` as ``out/name.json`` and, with ``draw``, its plot drawn to ``out/name.png``; says where."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(document, indent=2))
    if draw is None:
        print(f"wrote {out / name}.json", flush=True)
        return
    draw(out / f"{name}.png")
    print(f"wrote {out / name}.json and .png", flush=True)
