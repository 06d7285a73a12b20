"""What the docs tell a user to expect, against what the code does: the order of the two unpause proposals on one
Safe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _paragraph(text: str, opening: str) -> str:
    start = text.index(opening)
    return text[start : text.find("\n\n", start)]


def test_the_runbook_proposes_the_liquidations_unpause_once_the_first_is_submitted() -> None:
    step = _paragraph((ROOT / "docs" / "governance.md").read_text(), "4. **Unpause through the Timelock.**")
    step = re.sub(r"\s+", " ", step)
    assert "(and `--liquidations`)" not in step, "two proposals made at once share one Safe nonce"
    first = step.index("`creditmesh admin propose unpause`, sign, submit")
    second = step.index("only then `creditmesh admin propose unpause --liquidations`")
    assert first < second
