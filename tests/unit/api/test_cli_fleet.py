"""``creditmesh run --fleet``: a fleet file of simulated lenders, validated before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import build_parser
from api.local_platform import read_fleet

pytestmark = pytest.mark.unit


def test_run_takes_a_fleet_file(tmp_path: Path) -> None:
    path = tmp_path / "lenders.json"
    lenders = [{"lender_id": "slow-bank", "latency": {"distribution": "fixed", "ms": 100}}, {"lender_id": "quick"}]
    path.write_text(json.dumps(lenders))
    args = build_parser().parse_args(["run", "--fleet", str(path)])
    fleet = read_fleet(args.fleet)
    assert [lender.lender_id for lender in fleet] == ["slow-bank", "quick"]
    assert fleet[0].latency.ms == 100
    assert build_parser().parse_args(["run"]).fleet is None


@pytest.mark.parametrize(
    "content", ["[]", "{}", "not json", json.dumps([{"lender_id": "bad id with spaces"}]), json.dumps([{"x": 1}])]
)
def test_a_bad_fleet_file_is_refused_before_anything_starts(tmp_path: Path, content: str) -> None:
    path = tmp_path / "lenders.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match="fleet file"):
        read_fleet(path)
    with pytest.raises(SystemExit, match="fleet file"):
        read_fleet(tmp_path / "missing.json")
