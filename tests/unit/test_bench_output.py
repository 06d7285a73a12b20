"""bench.output: a result's file names from its label, its JSON written and its plot drawn beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.output import stem, write

pytestmark = pytest.mark.unit


def test_the_label_is_made_safe_for_a_file_name() -> None:
    assert stem("scale", "lead s11/quiet run") == "scale-lead-s11-quiet-run"
    assert stem("quote_path", "before") == "quote_path-before"


def test_the_json_is_written_and_the_plot_drawn_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drawn: list[Path] = []
    write(tmp_path / "results", "scale-x", {"ratio": "0.31"}, drawn.append)
    assert json.loads((tmp_path / "results" / "scale-x.json").read_text()) == {"ratio": "0.31"}
    assert drawn == [tmp_path / "results" / "scale-x.png"]
    assert capsys.readouterr().out.strip().endswith("scale-x.json and .png")


def test_without_a_plot_only_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "balancer-x", [1, 2])
    assert json.loads((tmp_path / "balancer-x.json").read_text()) == [1, 2]
    assert not (tmp_path / "balancer-x.png").exists()
    assert capsys.readouterr().out.strip().endswith("balancer-x.json")
