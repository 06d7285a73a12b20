"""``creditmesh wallet sign``: what it signs is a creditmesh acceptance, told on standard error before it is signed
(standard output carries the signature alone, as before); anything else is one line and exit status 1. A JSON list
was an AttributeError traceback, a document without ``domain`` said only ``wallet sign: 'domain'``, and any EIP-712
document (a token permit included) was signed without a word."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from api.cli import main
from api.wallet import SigningRefused, acceptance_to_sign, sign_acceptance
from contracts import typed_data
from contracts.typed_data import Permit, TokenDomain
from tests.support.acceptances import AGGREGATOR, BORROWER, USDC, WETH, acceptance

pytestmark = pytest.mark.unit


def quote(document: dict[str, Any]) -> dict[str, Any]:
    """A quote as ``GET /v1/quotes/{id}`` answers it, on ethereum-local (31337) at AGGREGATOR."""
    return {
        "id": "q1",
        "chain": "ethereum-local",
        "chain_id": 31337,
        "contract": AGGREGATOR,
        "acceptance_typed_data": document,
    }


def signed(tmp_path: Path, document: object, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    path = tmp_path / "typed.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    main(["wallet", "sign", str(path)])
    said = capsys.readouterr()
    return said.out, said.err


SUMMARY = (
    f"wallet sign: signing an acceptance on chain 31337 for contract {AGGREGATOR}: principal 1500000000 base units "
    f"of {USDC}, collateral 1000000000000000000 base units of {WETH}\n"
)


@pytest.mark.parametrize("whole_quote", [False, True], ids=["acceptance", "whole-quote"])
def test_an_acceptance_is_told_on_stderr_and_its_signature_alone_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], whole_quote: bool
) -> None:
    document = acceptance()
    out, err = signed(tmp_path, quote(document) if whole_quote else document, capsys)
    assert out == sign_acceptance(BORROWER, document) + "\n"
    assert err == SUMMARY


def _without(document: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    inner = changed
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return changed


def _with(document: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    inner = changed
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return changed


PERMIT = typed_data.permit_typed_data(
    TokenDomain("USD Coin", "2", 31337, USDC), Permit(BORROWER.address, AGGREGATOR, 2**256 - 1, 0, 1_900_000_000)
)
REFUSED = [
    ([acceptance()], "the document is a JSON list, not an EIP-712 object"),
    ('{"domain": ', r".*typed\.json is not JSON: Expecting value: line 1 column 12 \(char 11\)$"),
    ('"0xabc"', "the document is a JSON str, not an EIP-712 object"),
    (_without(acceptance(), "domain"), "the document has no domain: it is not EIP-712 typed data"),
    ({"message": {}}, "the document has no domain, types, primaryType: it is not EIP-712 typed data"),
    (PERMIT, "the document is 'Permit' typed data, not a creditmesh Acceptance: the wallet signs a quote's "),
    (_with(acceptance(), {"name": "Other", "version": "1"}, "domain"), "the acceptance's domain is not creditmesh's"),
    (_without(acceptance(), "message", "offer"), "the acceptance's message has no offer"),
    (_without(acceptance(), "domain", "verifyingContract"), "the acceptance has no 'verifyingContract'"),
    (_with(acceptance(), "lots", "message", "offer", "principal"), "the acceptance does not read: invalid literal"),
    (acceptance(offered_on=1), "the acceptance's offer is for chain 1, its domain for chain 31337"),
    (_with(acceptance(), -1, "message", "offer", "rateBps"), "the typed data does not encode: Value `-1`"),
    (
        quote(acceptance(chain_id=1, offered_on=1)),
        r"quote q1's acceptance is for chain 1, the quote is on ethereum-local \(chain 31337\): not signed",
    ),
    (
        quote(acceptance(contract="0x" + "55" * 20)),
        f"quote q1's acceptance is for contract {to_checksum_address('0x' + '55' * 20)}, the quote's contract is "
        f"{AGGREGATOR}: not signed",
    ),
    (
        acceptance() | {"domain": acceptance()["domain"] | {"salt": "0x" + "00" * 32}},
        re.escape("the acceptance's domain has the fields ['chainId', 'name', 'salt', 'verifyingContract', 'version']"),
    ),
]


@pytest.mark.parametrize(
    ("document", "reason"),
    REFUSED,
    ids=[
        "json-list",
        "not-json",
        "json-string",
        "no-domain",
        "no-domain-types-primary-type",
        "a-permit",
        "another-domain",
        "no-offer",
        "no-verifying-contract",
        "principal-not-a-number",
        "offer-for-another-chain",
        "rate-out-of-range",
        "quote-on-another-chain",
        "quote-of-another-contract",
        "domain-with-a-salt",
    ],
)
def test_anything_but_a_creditmesh_acceptance_is_one_line_and_nothing_signed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, reason: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        signed(tmp_path, document, capsys)
    said = str(refused.value.code)
    assert re.match(f"wallet sign: {reason}", said), said
    assert "\n" not in said
    assert capsys.readouterr().out == ""  # no signature


def test_a_json_list_on_stdin_exits_1_with_one_line_not_a_traceback() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "wallet", "sign", "-"],
        input="[]",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr == "wallet sign: the document is a JSON list, not an EIP-712 object\n"


def test_an_acceptance_that_does_not_encode_is_refused_before_anything_is_signed_for_it() -> None:
    """``wallet accept`` checks the acceptance (``acceptance_to_sign``) before it signs the collateral's permit or
    sends its approval: a value that does not encode as its EIP-712 type is refused there, not after an approval
    was mined for a quote never accepted."""
    document = acceptance()
    document["message"]["offer"]["rateBps"] = "5%"
    with pytest.raises(SigningRefused, match="the typed data does not encode"):
        acceptance_to_sign(document)
