"""bench.quote_path_ab writes its figures like the other benchmarks: JSON with every slice, the medians and B / A,
and a PNG plot, in ``--out``."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import pytest

from bench.output import write
from bench.quote_path_ab import NAME, plot, summary

pytestmark = pytest.mark.unit


def test_the_slices_medians_and_ratio_are_written_as_json_and_a_plot(tmp_path: Path) -> None:
    args = argparse.Namespace(label="t", concurrency=10, slices=4, seconds=6.0, latency_ms=100.0)
    figures = [[13.0, 14.0, 12.0, 13.5], [12.5, 14.5, 11.0, 13.0]]
    document = summary(args, [Path("/a"), Path("/b")], figures, [1.0, 1.0, 1.0])
    write(tmp_path, f"{NAME}-t", document, partial(plot, document))

    written = json.loads((tmp_path / "quote_path_ab-t.json").read_text())
    assert written["a_cpu_ms_per_request"] == [13.0, 14.0, 12.0, 13.5]
    assert (written["a_median_ms"], written["b_median_ms"]) == (13.25, 12.75)
    assert written["b_over_a"] == round(12.75 / 13.25, 3)
    assert written["b_lower_in"] == 3
    assert (tmp_path / "quote_path_ab-t.png").read_bytes().startswith(b"\x89PNG")
