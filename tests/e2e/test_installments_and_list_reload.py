"""An amortizing loan end to end over real HTTP: a simulated lender quoting monthly installments with an odd first
period and a balloon (and the payments it computed itself) → the quote disclosed with that schedule by Appendix J's
method → termsHash covering the installments, signed in the offer → accept (the lender reserves exactly the
disclosed schedule, funds after LoanOpened) → the loan shows the schedule servicing counts days past due from.

And, on the same platform (one start-up for both), a sanctions name list imported while the API runs is screened
with within seconds, without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import rfc8785
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from api.cli import main
from api.demo import onboard, passport_kyc
from api.wallet import sign_acceptance
from compliance.tila.apr import CashFlow, UnitPeriod, actuarial_apr, round_apr, unit_periods_between
from providers.sim.fleet import FailureSpec, InstallmentProduct, SimLender
from tests.e2e.test_accept_saga import _send, _settled
from tests.integration.compliance.test_sanctions_import import _files
from tests.support.devnet import DeployedChain
from tests.support.platform import LENDER_SECRET, RunningPlatform, offer_nonces_from, running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHAIN = "ethereum-local"
LENDER = "sim-amortizing"
CARELESS = "sim-careless"  # sends its own payments, the first a cent off its terms
FIRST_NONCE = 2**41  # apart from the other platforms of this session signing on the same devnets
PRODUCT = InstallmentProduct(frequency="monthly", first_due_days=45, balloon_bps=2_000)
REQUEST = {
    "amount": "1200.00",
    "asset": "USDC",
    "term_days": 135,  # the first installment 45 days out and three whole months after it: the schedule's term
    "collateral": {"asset": "WETH", "amount": "1.0"},
    "preferred_chains": [CHAIN],
}


@pytest.fixture(scope="module")
def platform(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schema: Callable[[str], str],
) -> Iterator[RunningPlatform]:
    url = postgres_schema("installment_loan")
    offer_nonces_from(url, devnet_chains, FIRST_NONCE)
    fleet = [
        SimLender(lender_id=LENDER, secret=LENDER_SECRET, installments=PRODUCT),
        SimLender(
            lender_id=CARELESS, secret=LENDER_SECRET, installments=PRODUCT, failure=FailureSpec(mode="wrong_schedule")
        ),
    ]
    settings = {"CREDITMESH_SANCTIONS_RELOAD_SECONDS": "0.5"}
    directory = tmp_path_factory.mktemp("installments")
    with running_platform(devnet_chains, directory, database_url=url, fleet=fleet, settings=settings) as run:
        yield run


def _borrower(platform: RunningPlatform, chain: DeployedChain) -> tuple[LocalAccount, str]:
    account: LocalAccount = Account.create()
    chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**18)])  # type: ignore[arg-type]
    _send(chain, account, chain.contract("WETH").functions.mint(account.address, 2 * 10**18))
    _send(chain, account, chain.contract("WETH").functions.approve(chain.record.address("CreditAggregator"), 10**18))
    return account, platform.onboard(account.address)


def _units(amount: str) -> int:
    return int(Decimal(amount).scaleb(6))


def test_an_amortizing_offer_is_disclosed_hashed_accepted_and_serviced_by_its_schedule(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    account, key = _borrower(platform, devnet_chains[CHAIN])
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST)
        assert response.status_code == 201, response.text
        request = response.json()
        quote = next(q for q in request["quotes"] if q["provider_id"] == LENDER)
        (careless,) = [o for o in request["provider_outcomes"] if o["provider_id"] == CARELESS]
        assert careless["outcome"] == "dropped", "a lender whose payments are not its terms' is never disclosed"
        assert "installment 1" in careless["detail"]
        assert CARELESS not in {q["provider_id"] for q in request["quotes"]}
        disclosure = quote["disclosure"]
        document = disclosure["document"]
        start = date.fromisoformat(document["start"][:10])

        # the lender's schedule: 4 monthly installments, the first 45 days out, 20% of the principal at the end
        schedule = quote["schedule"]
        assert quote["repayment"] == "installments-with-balloon/monthly"
        assert len(schedule) == 4
        assert schedule[0]["due"] == (start + timedelta(days=45)).isoformat(), "an odd first period"
        assert len({i["amount"] for i in schedule[:3]}) == 1, "equal regular installments"
        assert Decimal(schedule[3]["principal"]) > Decimal("240"), "the balloon is repaid with the last one"
        assert sum(Decimal(i["principal"]) for i in schedule) == Decimal("1200")
        last_due = date.fromisoformat(schedule[-1]["due"])
        assert quote["term_days"] == (last_due - start).days, "the term is the schedule's"
        assert int(quote["offer"]["term"]) == quote["term_days"] * 86_400, "and so is the signed on-chain term"

        # the APR by Appendix J from the disclosed payments (monthly unit periods, odd first period as a fraction)
        flows = [
            CashFlow(Decimal(i["amount"]), *unit_periods_between(start, date.fromisoformat(i["due"]), UnitPeriod.MONTH))
            for i in schedule
        ]
        advance = Decimal(disclosure["amount_financed"])
        assert disclosure["apr"] == format(round_apr(actuarial_apr([CashFlow(advance, 0)], flows, 12)), "f")
        assert Decimal(disclosure["total_of_payments"]) == sum(Decimal(i["amount"]) for i in schedule)

        # termsHash: keccak256 of the RFC 8785 JSON of the disclosure, installments included, in the signed offer
        terms_hash = "0x" + keccak(rfc8785.dumps(document)).hex()
        assert disclosure["terms_hash"] == terms_hash == quote["offer"]["termsHash"]
        assert [p["amount"] for p in document["payments"]] == [f"{Decimal(i['amount']):.6f}" for i in schedule]

        accepted = client.post(
            f"/v1/quotes/{quote['id']}/accept",
            json={"signature": sign_acceptance(account, quote["acceptance_typed_data"])},
        )
        assert accepted.status_code in (200, 201, 202), accepted.text
        assert _settled(platform, key, quote["id"]) == "accepted"
        loan_id = client.get(f"/v1/credit-requests/{request['id']}").json()["loan_id"]
        loan = client.get(f"/v1/loans/{loan_id}").json()

    # the lender reserved exactly the disclosed schedule, and was told to fund the loan opened on-chain
    lender = httpx.get(f"{platform.lender_url}/control/lenders/{LENDER}", timeout=10).json()
    ((offer_ref, reserved),) = lender["reserved"].items()
    assert reserved["repayment"] == "installments"
    assert reserved["installments"] == 4
    assert reserved["term_days"] == quote["term_days"]
    assert [(p["due"], int(p["amount"])) for p in reserved["schedule"]["payments"]] == [
        (i["due"], _units(i["amount"])) for i in schedule
    ]
    assert reserved["schedule"]["first_due"] == schedule[0]["due"]
    assert int(reserved["schedule"]["balloon"]) == _units("240.00")
    assert lender["funded_by"][offer_ref]["tx_hash"] == loan["transaction_hash"]

    # the loan carries the schedule for servicing
    assert loan["term_seconds"] == quote["term_days"] * 86_400
    assert loan["schedule"] == schedule


def test_a_list_imported_while_the_api_runs_is_screened_with_within_seconds(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    account: LocalAccount = Account.create()
    key = onboard(
        platform.api_url,
        platform.admin_key,
        account.address,
        kyc=passport_kyc("US-FL", "Dmitriy Ivanovich", "Kovalenko"),
    )
    with platform.client(platform.admin_key) as admin:
        before = admin.get("/health").json()["lists"]["ofac-sdn-names"]
        main(
            [
                "sanctions",
                "import",
                *_files(tmp_path),
                "--published",
                "2026-11-20",
                "--database-url",
                platform.database_url,
            ]
        )  # _files gives --force: three entries in place of the shipped 13,738
        deadline = time.monotonic() + 30
        while (label := admin.get("/health").json()["lists"]["ofac-sdn-names"]) == before:
            assert time.monotonic() < deadline, "the running API did not pick up the imported list"
            time.sleep(0.2)
    assert label.startswith("ofac-sdn-names@2026-11-20#")
    with platform.client(key) as client:
        refused = client.post("/v1/credit-requests", json=REQUEST)
    assert refused.status_code == 403, refused.text
    assert "sanctions" in refused.text, "held by the imported list's alias (ALT.CSV), without a restart"
