"""What the README and the runbook tell a user to expect, against what the code does: the start-up journey's wallet,
and the order of the two unpause proposals on one Safe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from api.cli import run
from chain.signers import devnet_account

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _paragraph(text: str, opening: str) -> str:
    start = text.index(opening)
    return text[start : text.find("\n\n", start)]


def test_the_readme_names_the_journeys_wallet_as_the_start_up_makes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    wallets: list[str] = []

    def journey(api_url: str, key: str, account: LocalAccount, rpc: Any, say: Any) -> None:
        wallets.append(account.address)

    monkeypatch.setattr(run, "fund_on_devnets", lambda *args: None)
    monkeypatch.setattr(run, "onboard", lambda *args: "cm_key")
    monkeypatch.setattr(run, "journey", journey)
    run._show_journey("http://api.test", "cm_admin")
    run._show_journey("http://api.test", "cm_admin")
    assert len(set(wallets)) == 2, "a new wallet each run"
    assert not {devnet_account(i).address for i in range(10)} & set(wallets)

    said = _paragraph((ROOT / "README.md").read_text(), "`make run` first shows a borrower's whole journey")
    first_sentence = said.split(":", 1)[0]
    assert "devnet account" not in first_sentence, first_sentence
    assert "a new wallet each run" in first_sentence


def test_the_runbook_proposes_the_liquidations_unpause_once_the_first_is_submitted() -> None:
    step = _paragraph((ROOT / "docs" / "governance.md").read_text(), "4. **Unpause through the Timelock.**")
    step = re.sub(r"\s+", " ", step)
    assert "(and `--liquidations`)" not in step, "two proposals made at once share one Safe nonce"
    first = step.index("`creditmesh admin propose unpause`, sign, submit")
    second = step.index("only then `creditmesh admin propose unpause --liquidations`")
    assert first < second
