"""A client generated from the OpenAPI document runs the borrower's journey, and schemathesis runs over the whole
document (issue 17), against the platform's processes over real HTTP, with a borrower's and an admin's key (and a
second borrower's for the onboarding, below), every check on: no 5xx, every response as documented (status, content
type, headers, schema), invalid input refused, valid input accepted, auth enforced. The default run is bounded (a
fixed seed, at most 20 examples per operation); ``make fuzz-api`` runs the long one (``-m slow``: every role,
hundreds per operation)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from eth_account import Account

from api.app import create_app
from api.demo import DEMO_PROFILE, passport_kyc
from api.wallet import approve_collateral, sign_acceptance
from chain.signers import devnet_account
from tests.support.cluster import NO_VELOCITY_LIMITS
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("CREDITMESH_FUZZ_SEED", "17"))  # other inputs: make fuzz-api FUZZ_SEED=n
CONFIG = Path(__file__).with_name("schemathesis.toml")
BORROWER = devnet_account(8)
JOURNEY = devnet_account(6)


@pytest.fixture(scope="module")
def platform(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    # no velocity limit: past a borrower's 25 an hour every generated credit request would be a 429, and the
    # fuzzer would test the limit instead of the request (and have no credit request to follow a link from)
    with running_platform(devnet_chains, tmp_path_factory.mktemp("fuzzed"), settings=NO_VELOCITY_LIMITS) as running:
        yield running


def schemathesis(platform: RunningPlatform, key: str, report: Path, *options: str) -> subprocess.Popen[str]:
    """A schemathesis run over the platform's own document with ``key``, every check on; its output in ``report``."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{platform.api_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--header",
        f"X-API-Key: {key}",
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        str(report.with_suffix(".xml")),
        *options,
    ]
    with report.open("w") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, text=True, env=os.environ | {"NO_COLOR": "1"}
        )


# A borrower's onboarding (its identity, its credit profile) is fuzzed by a borrower of its own, the "applicant": a
# generated KYC submission is rejected and a generated profile may be declined, and a borrower whose identity was
# rejected gets 403 for every credit request after it. Fuzzed with the borrower's key, the onboarding left that
# borrower refused, so none of its credit requests reached the lenders (not one 201 in a whole `make fuzz-api` run).
# The applicant's two operations link nowhere: no stateful phase (schemathesis refuses one without links).
_ONBOARDING_OPERATIONS = "^(verify_identity|put_credit_profile)$"
ONBOARDING = ("--include-operation-id-regex", _ONBOARDING_OPERATIONS, "--phases", "examples,coverage,fuzzing")
NOT_ONBOARDING = ("--exclude-operation-id-regex", _ONBOARDING_OPERATIONS)


def _borrowers(platform: RunningPlatform, borrower: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The borrower asking for credit (its wallet ``borrower``), and the applicant fuzzing the onboarding."""
    return {
        "borrower": (platform.onboard(borrower), NOT_ONBOARDING),
        "applicant": (platform.onboard(Account.create().address), ONBOARDING),
    }


def _run_all(
    platform: RunningPlatform, keys: dict[str, tuple[str, tuple[str, ...]]], directory: Path, *options: str
) -> None:
    """One run per role (its key and its operations), side by side (the API serves them concurrently); every one
    must pass."""
    runs = {
        role: schemathesis(platform, key, directory / f"{role}.log", *options, *only)
        for role, (key, only) in keys.items()
    }
    failed = {}
    try:
        for role, run in runs.items():
            if run.wait(timeout=7_200) != 0:
                failed[role] = (directory / f"{role}.log").read_text()[-20_000:]
    finally:  # a test stopped by its timeout leaves no run behind
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    assert not failed, "\n\n".join(f"schemathesis as {role}:\n{out}" for role, out in failed.items())


@pytest.mark.timeout(900)  # bounded, but a loaded machine answers slowly
def test_the_whole_document_holds_for_a_borrower_and_an_admin(platform: RunningPlatform, tmp_path: Path) -> None:
    """Bounded: at most 20 examples per operation, generated and stateful phases (``make fuzz-api`` adds the
    coverage phase's systematic boundary cases)."""
    keys = _borrowers(platform, BORROWER.address) | {"admin": (platform.admin_key, ())}
    _run_all(platform, keys, tmp_path, "--max-examples", "20", "--phases", "examples,fuzzing,stateful")


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A Python client generated from the document alone by openapi-python-client (nothing of ours imported)."""
    root = tmp_path_factory.mktemp("generated")
    (root / "openapi.json").write_text(json.dumps(create_app().openapi()))
    (root / "config.yaml").write_text("post_hooks: []\npackage_name_override: creditmesh_client\n")
    generate = [
        str(Path(sys.executable).with_name("openapi-python-client")),
        "generate",
        "--path",
        "openapi.json",
        "--config",
        "config.yaml",
        "--meta",
        "none",
        "--output-path",
        "creditmesh_client",
    ]
    done = subprocess.run(generate, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("creditmesh_client")
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.startswith("creditmesh_client")]:
            del sys.modules[name]


def test_a_generated_client_runs_the_borrower_journey(
    platform: RunningPlatform, generated_client: ModuleType, devnet_chains: dict[str, DeployedChain]
) -> None:
    def module(name: str) -> Any:
        return importlib.import_module(f"creditmesh_client.{name}")

    api, models = "api", module("models")
    UNSET = module("types").UNSET  # noqa: N806 - the generated client's name
    client_type = module("client").AuthenticatedClient
    admin = client_type(base_url=platform.api_url, token=platform.admin_key, prefix="", auth_header_name="X-API-Key")
    registered = module(f"{api}.borrowers.register_borrower").sync(
        client=admin,
        body=models.BorrowerIn(wallet_address=JOURNEY.address, jurisdiction="US-FL"),
        idempotency_key=str(uuid.uuid4()),
    )
    assert isinstance(registered, models.BorrowerOut), registered
    borrower = client_type(
        base_url=platform.api_url, token=registered.api_key, prefix="", auth_header_name="X-API-Key", timeout=60
    )
    checked = module(f"{api}.borrowers.verify_identity").sync(
        client=borrower, body=models.KycIn.from_dict(passport_kyc("US-FL")), idempotency_key=str(uuid.uuid4())
    )
    assert isinstance(checked, models.KycOut), checked
    for _ in range(300):
        me = module(f"{api}.borrowers.me").sync(client=borrower)
        if me.kyc is not None and me.kyc.state != "pending":
            break
        time.sleep(0.1)
    assert me.kyc.state == "approved", me
    profile = module(f"{api}.borrowers.put_credit_profile").sync(
        client=borrower, body=models.CreditProfile.from_dict(DEMO_PROFILE)
    )
    assert isinstance(profile, models.CreditProfile), profile

    request = models.CreditRequestIn.from_dict(
        {
            "amount": "1500.00",
            "asset": "USDC",
            "term_days": 30,
            "collateral": {"asset": "WETH", "amount": "1.0"},
            "preferred_chains": ["polygon-local"],
        }
    )
    created = module(f"{api}.credit_requests.create_credit_request").sync(
        client=borrower, body=request, idempotency_key=str(uuid.uuid4())
    )
    assert isinstance(created, models.CreditRequestOut), created
    quote = next(q for q in created.quotes if q.kind == "pool")
    chain = devnet_chains[quote.chain]
    offer = quote.offer.to_dict()
    approve_collateral(
        JOURNEY, chain.devnet.rpc_url, offer["collateralAsset"], quote.contract, int(offer["collateralAmount"])
    )
    signature = sign_acceptance(JOURNEY, quote.acceptance_typed_data.to_dict())
    accept = module(f"{api}.quotes.accept_quote")
    key = str(uuid.uuid4())
    loan = accept.sync(
        client=borrower, quote_id=quote.id, body=models.AcceptIn(signature=signature), idempotency_key=key
    )
    assert isinstance(loan, models.LoanOut), loan
    assert loan.status == "active"
    retried = accept.sync_detailed(
        client=borrower, quote_id=quote.id, body=models.AcceptIn(signature=signature), idempotency_key=key
    )
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.parsed.id == loan.id

    # the borrower's requests and the request's quotes, a page at a time; an admin sees the request too
    listed = module(f"{api}.credit_requests.list_credit_requests").sync(client=borrower, limit=1)
    assert [item.id for item in listed.items] == [created.id]
    seen, cursor = [], None
    list_quotes = module(f"{api}.credit_requests.list_quotes_of_request")
    while True:
        quotes_page = list_quotes.sync(client=borrower, request_id=created.id, limit=1, cursor=cursor or UNSET)
        seen += [item.id for item in quotes_page.items]
        if not quotes_page.next_:
            break
        cursor = parse_qs(urlsplit(quotes_page.next_).query)["cursor"][0]
    assert seen == [q.id for q in created.quotes]  # in rank order, as the request lists them
    everyone = module(f"{api}.credit_requests.list_credit_requests").sync(client=admin, limit=200)
    assert created.id in {item.id for item in everyone.items}

    # the same borrower through OAuth2: its key's client credentials → a bearer token that reads its loans
    grant = models.OauthTokenBody.from_dict(
        {"grant_type": "client_credentials", "client_id": registered.api_key_id, "client_secret": registered.api_key}
    )
    token = module(f"{api}.oauth.oauth_token").sync(
        client=module("client").Client(base_url=platform.api_url), body=grant
    )
    assert isinstance(token, models.TokenOut), token
    bearer = client_type(base_url=platform.api_url, token=token.access_token)
    page = module(f"{api}.loans.list_loans").sync(client=bearer)
    assert [item.id for item in page.items] == [loan.id]
    shown = module(f"{api}.loans.get_loan").sync(client=bearer, loan_id=loan.id)
    assert shown.transaction_hash == loan.transaction_hash


@pytest.mark.slow
@pytest.mark.timeout(7_200)
def test_the_whole_document_holds_for_every_role_at_length(platform: RunningPlatform, tmp_path: Path) -> None:
    """``make fuzz-api``: every role's key, every phase, ``CREDITMESH_FUZZ_API_EXAMPLES`` (300) examples per
    operation."""
    keys = _borrowers(platform, devnet_account(16).address) | {
        "admin": (platform.admin_key, ()),
        "auditor": (_issued(platform, {"role": "auditor", "label": "fuzz"}), ()),
        "provider": (_issued(platform, {"role": "provider", "subject_id": "sim-bank", "label": "fuzz"}), ()),
    }
    _run_all(platform, keys, tmp_path, "--max-examples", os.environ.get("CREDITMESH_FUZZ_API_EXAMPLES", "300"))


def _issued(platform: RunningPlatform, body: dict[str, str]) -> str:
    with platform.client(platform.admin_key) as client:
        response = client.post("/v1/api-keys", json=body)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key
