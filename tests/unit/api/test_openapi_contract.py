"""The OpenAPI document as a contract a client can be generated from (issue 17), and the docs pages served offline:
read from the real application (its lifespan is not needed for the document, the docs or OPTIONS)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.openapi import LINKS

pytestmark = pytest.mark.unit

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_every_error_status_is_a_problem_with_a_schema_and_an_example(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    for path, method, operation in _operations(document):
        errors = {status: r for status, r in operation["responses"].items() if not status.startswith("2")}
        assert errors or path in {"/healthz", "/metrics", "/.well-known/jwks.json"}, f"{method} {path} lists no error"
        for status, response in errors.items():
            assert list(response["content"]) == [PROBLEM_JSON], f"{method} {path} {status}"
            media = response["content"][PROBLEM_JSON]
            refusal = path == "/v1/credit-requests" and method == "post" and status in {"403", "429"}
            problem = "CreditRequestRefusal" if refusal else "Problem"  # a Problem with the adverse-action notice
            assert media["schema"] == {"$ref": f"#/components/schemas/{problem}"}, f"{method} {path} {status}"
            assert media["example"]["status"] == int(status)
    accept = document["paths"]["/v1/quotes/{quote_id}/accept"]["post"]["responses"]
    assert {"401", "403", "404", "409", "410", "413", "422", "503"} <= set(accept)


def test_operations_have_stable_ids_tags_and_the_api_key_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == schemes["ApiKey"] | {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"] | {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"} == schemes["Bearer"]
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    assert {"create_credit_request", "accept_quote", "get_quote", "register_borrower", "healthz"} <= set(ids)
    tags = {tag["name"] for tag in document["tags"]}
    for path, method, operation in _operations(document):
        assert set(operation["tags"]) <= tags, f"{method} {path}"
        probe = path in {"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json"}
        public = probe or path in {"/v1/providers/{provider_id}/webhooks", "/v1/kyc/webhooks", "/v1/oauth/token"}
        assert (operation.get("security") == [{"ApiKey": []}, {"Bearer": []}]) is not public, f"{method} {path}"
        assert ("401" in operation["responses"]) is not probe, f"{method} {path}"
    readyz = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"][PROBLEM_JSON]
    assert readyz["example"]["status"] == 503


def test_request_schemas_carry_the_enforced_limits(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    request = schemas["CreditRequestIn"]["properties"]
    assert (request["term_days"]["minimum"], request["term_days"]["maximum"]) == (1, 365)
    amount = re.compile(request["amount"]["pattern"])
    assert amount.search("1500.00")
    assert not amount.search("1e999999999")
    assert not amount.search("١٥٠٠")
    signature = schemas["AcceptIn"]["properties"]["signature"]
    assert signature["minLength"] == 132
    assert re.search(signature["pattern"], "0x" + "ab" * 65)
    assert not re.search(signature["pattern"], "0x" + "ab" * 65 + "a")


#: pydantic's own names for bounds: in a document they bind no reader (``Field(ge=0)`` on an annotated type in a union
#: once wrote ``ge`` where ``minimum`` belongs, and schemathesis sent a negative block as valid)
PYDANTIC_BOUNDS = {"ge", "gt", "le", "lt", "min_length", "max_length", "multiple_of"}


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the document, nested ones included."""
    if isinstance(node, dict):
        yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _objects(child)


def test_every_bound_is_written_in_json_schema_terms(document: dict[str, Any]) -> None:
    schemas = [node for node in _objects(document) if "type" in node or "anyOf" in node]
    assert [(schema.get("title"), schema) for schema in schemas if PYDANTIC_BOUNDS & schema.keys()] == []
    from_block = document["components"]["schemas"]["ReconciliationIn"]["properties"]["from_block"]["anyOf"][0]
    assert from_block == {"type": "integer", "minimum": 0}


async def test_options_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    providers = await client.options("/v1/providers")
    assert providers.status_code == 204
    assert set(providers.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    accept = await client.options("/v1/quotes/some-quote/accept")
    assert set(accept.headers["allow"].split(", ")) == {"POST", "OPTIONS"}
    nowhere = await client.options("/v1/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_reference_only_their_own_assets(client: httpx.AsyncClient, page: str) -> None:
    html = (await client.get(page)).text
    assert not re.search(r"https?://|//[a-z]", html), "the docs page loads something from another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert asset.startswith(page + "/")
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.content, asset


def test_a_running_platform_names_its_assets_and_chains_in_the_request_schemas() -> None:
    from decimal import Decimal
    from types import SimpleNamespace

    from aggregator.assets import Asset, AssetRegistry

    app = create_app()
    assert "enum" not in app.openapi()["components"]["schemas"]["CreditRequestIn"]["properties"]["asset"]
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1)), Asset("WETH", 18, Decimal(3000))])
    app.state.platform = SimpleNamespace(assets=assets, chains={"polygon-local": None, "ethereum-local": None})
    schemas = app.openapi()["components"]["schemas"]
    assert schemas["CreditRequestIn"]["properties"]["asset"]["enum"] == ["USDC", "WETH"]
    assert schemas["CollateralIn"]["properties"]["asset"]["enum"] == ["USDC", "WETH"]
    chains = schemas["CreditRequestIn"]["properties"]["preferred_chains"]["items"]["enum"]
    assert chains == ["ethereum-local", "polygon-local"]


def test_a_running_platform_holds_each_assets_amounts_to_its_decimals_and_range() -> None:
    from decimal import Decimal
    from types import SimpleNamespace

    from aggregator.assets import Asset, AssetRegistry

    app = create_app()
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1)), Asset("WETH", 18, Decimal(3000))])
    lending = SimpleNamespace(lendable_assets=frozenset({"USDC"}))
    app.state.platform = SimpleNamespace(assets=assets, chains={"polygon-local": None}, quoting=lending)
    schemas = app.openapi()["components"]["schemas"]
    request = schemas["CreditRequestIn"]["properties"]
    assert request["asset"]["enum"] == ["USDC"]  # lent; WETH is taken only as collateral
    usdc = re.compile(request["amount"]["pattern"])
    assert usdc.search("1500.000001")
    assert usdc.search("79228162514264337593543.950335")  # 2^96-1 base units
    assert not usdc.search("79228162514264337593543.950336")
    assert not usdc.search("1500.0000001")
    assert not usdc.search("0.00")
    collateral = schemas["CollateralIn"]
    assert collateral["properties"]["asset"]["enum"] == ["USDC", "WETH"]
    assert "pattern" not in collateral["properties"]["amount"]
    branches = {b["properties"]["asset"]["const"]: b["properties"]["amount"]["pattern"] for b in collateral["oneOf"]}
    assert set(branches) == {"USDC", "WETH"}
    assert re.search(branches["WETH"], "1." + "1" * 18)
    assert not re.search(branches["USDC"], "1." + "1" * 18)


def test_a_kyc_submission_documents_the_identity_provider_outage(document: dict[str, Any]) -> None:
    unavailable = document["paths"]["/v1/borrowers/me/kyc"]["post"]["responses"]["503"]
    assert unavailable["content"][PROBLEM_JSON]["example"]["type"].endswith("/identity-unavailable")
    assert unavailable["headers"]["Retry-After"]["schema"]["pattern"] == "^[0-9]+$"


def test_examples_and_headers_are_what_the_operations_send(document: dict[str, Any]) -> None:
    """An example's problem type is one the operation sends for that status (api/problems.py, the routers), and the
    headers listed are the ones it sets: Retry-After on an Idempotency-Key's 409 (the first request still running)
    but not on /readyz's 503, Idempotent-Replayed on an idempotent operation's success, Location on a started
    reconciliation; the webhooks list their replay (409), chain (503) and refusal-limit (429) answers."""

    def answer(path: str, method: str, status: int) -> dict[str, Any]:
        return dict(document["paths"][path][method]["responses"][str(status)])

    def example_type(path: str, method: str, status: int) -> str:
        return str(answer(path, method, status)["content"][PROBLEM_JSON]["example"]["type"]).rsplit("/", 1)[1]

    accept = "/v1/quotes/{quote_id}/accept"
    assert example_type(accept, "post", 410) == "quote-expired"
    assert example_type(accept, "post", 503) == "chain-unavailable"
    assert example_type("/v1/credit-requests", "post", 403) == "compliance-denied"
    assert example_type("/readyz", "get", 503) == "not-ready"
    webhook = "/v1/providers/{provider_id}/webhooks"
    assert example_type(webhook, "post", 503) == "payment-not-sent", "a payment kept, its record not sent yet"
    assert "Retry-After" in answer(webhook, "post", 503)["headers"]
    assert "Retry-After" not in answer("/readyz", "get", 503).get("headers", {})
    assert "Retry-After" in answer(accept, "post", 409)["headers"]
    repaying = answer("/v1/loans/{loan_id}/repayments", "post", 409)
    assert "Retry-After" in repaying["headers"]
    assert "repayment-in-progress, with Retry-After, while another repayment" in repaying["description"]
    assert "Idempotent-Replayed" in answer(accept, "post", 201)["headers"]
    assert "Idempotent-Replayed" not in answer("/v1/quotes/{quote_id}", "get", 200).get("headers", {})
    assert "Location" in answer("/v1/reconciliations", "post", 202)["headers"]
    assert {"409", "429", "503"} <= set(document["paths"]["/v1/providers/{provider_id}/webhooks"]["post"]["responses"])
    assert "429" in document["paths"]["/v1/kyc/webhooks"]["post"]["responses"]


def test_every_link_calls_an_operation_with_its_path_parameters_from_the_answer(document: dict[str, Any]) -> None:
    """A link names an operation of the document, gives exactly its path parameters, and reads each from a
    property the linking answer's schema has (a link that drifts from the document is a fuzzer's dead end)."""
    operations = {op["operationId"]: op for _, _, op in _operations(document)}
    schemas = document["components"]["schemas"]
    linking = set()
    for _, _, operation in _operations(document):
        for response in operation["responses"].values():
            for name, link in response.get("links", {}).items():
                linking.add(operation["operationId"])
                target = operations[link["operationId"]]
                wanted = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                assert set(link["parameters"]) == wanted, (operation["operationId"], name)
                answer = schemas[response["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
                for expression in link["parameters"].values():
                    assert expression.startswith("$response.body#/"), expression
                    assert expression.split("/")[1] in answer["properties"], (operation["operationId"], expression)
    assert linking == set(LINKS), "a link table entry for an operation the document does not have"
    repaid = operations["repay_loan"]["responses"]
    assert repaid["201"]["links"] == repaid["202"]["links"]  # on every success answer: confirmed or submitted
    accepted = operations["create_credit_request"]["responses"]["201"]["links"]["AcceptBestQuote"]
    assert accepted == {"operationId": "accept_quote", "parameters": {"quote_id": "$response.body#/quotes/0/id"}}


def test_the_sanctions_screening_status_is_an_enumeration_of_its_states(document: dict[str, Any]) -> None:
    status = document["components"]["schemas"]["SanctionsScreeningOut"]["properties"]["status"]
    assert status["enum"] == ["not-yet-screened", "clear", "held-for-review", "blocked"]
    assert "not-yet-screened (no credit request" in status["description"]


def test_a_quotes_signed_documents_carry_each_uint256_as_a_string(document: dict[str, Any]) -> None:
    """A generated client reads the offer and the acceptance's message as strings where a JSON number would lose
    digits in JavaScript (1 WETH is 10^18 base units), and numbers only where 2^53 bounds them."""
    schemas = document["components"]["schemas"]
    quote = schemas["QuoteOut"]["properties"]
    assert quote["offer"]["$ref"] == "#/components/schemas/OfferOut"
    assert quote["acceptance_typed_data"]["$ref"] == "#/components/schemas/AcceptanceTypedDataOut"
    offer = schemas["OfferOut"]["properties"]
    for name in ("principal", "originationFee", "collateralAmount", "chainId", "nonce"):
        assert offer[name]["type"] == "string", name
        assert re.fullmatch(offer[name]["pattern"], str(2**256 - 1)), name
        assert not re.fullmatch(offer[name]["pattern"], "1e18"), name
    for name in ("rateBps", "term", "expiry"):
        assert offer[name]["type"] == "integer", name
        assert offer[name]["maximum"] <= 2**53, name
    message = schemas["AcceptanceTypedDataOut"]["properties"]["message"]["$ref"].rsplit("/", 1)[1]
    assert schemas[message]["properties"]["offer"]["$ref"] == "#/components/schemas/OfferOut"


def test_every_429_and_503_documents_retry_after_and_a_reconciliation_its_chain_unavailable(
    document: dict[str, Any],
) -> None:
    for path, method, operation in _operations(document):
        for status in ("429", "503"):
            if status in operation["responses"] and path != "/readyz":  # a probe asks on its own schedule
                assert "Retry-After" in operation["responses"][status].get("headers", {}), f"{method} {path} {status}"
    unavailable = document["paths"]["/v1/reconciliations"]["post"]["responses"]["503"]
    assert unavailable["content"][PROBLEM_JSON]["example"]["type"].endswith("/chain-unavailable")


def test_the_documented_examples_are_the_problems_the_api_sends(document: dict[str, Any]) -> None:
    def example(path: str, method: str, status: str) -> tuple[str, str]:
        shown = document["paths"][path][method]["responses"][status]["content"][PROBLEM_JSON]["example"]
        return shown["type"].rsplit("/", 1)[1], shown["title"]

    assert example("/v1/borrowers", "post", "413") == ("body-too-large", "Request body too large")  # api.body_limit
    assert example("/v1/loans/{loan_id}/events", "get", "404") == ("loan-not-found", "Loan not found")
    assert example("/v1/loans", "get", "400") == ("invalid-cursor", "The page cursor is invalid")
    assert example("/v1/borrowers", "post", "409")[0] == "wallet-already-registered"
    assert example("/v1/providers", "post", "409")[0] == "provider-already-registered"
    conflict = document["paths"]["/v1/providers"]["post"]["responses"]["409"]["description"]
    assert conflict == (
        "Conflict (provider-already-registered; or pool-already-served when another provider that quotes stands "
        "for the pool)"
    )
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                shown = response["content"][PROBLEM_JSON]["example"]["type"]
                assert not shown.endswith("/http-error"), f"{method} {path} {status}"


def test_every_operation_that_reads_the_database_documents_its_outage(document: dict[str, Any]) -> None:
    """Every authenticated operation reads its caller's key, and the public webhooks and token endpoint record or
    look up: each answers 503 ``database-unavailable`` with Retry-After while the database does not answer
    (api/problems.py; tests/chaos/test_outages.py), and says so — as its example, or beside its own 503's example.
    The probes that read no database (liveness, metrics, the signing keys) do not list it."""
    database_free = {"/healthz", "/metrics", "/.well-known/jwks.json"}
    for path, method, operation in _operations(document):
        unavailable = operation["responses"].get("503")
        if path in database_free:
            assert unavailable is None, f"{method} {path}"
            continue
        if path == "/readyz":  # reports the database's state as not-ready
            continue
        assert unavailable is not None, f"{method} {path} does not document the database's outage"
        assert "Retry-After" in unavailable["headers"], f"{method} {path}"
        shown = unavailable["content"][PROBLEM_JSON]["example"]["type"].rsplit("/", 1)[1]
        assert shown == "database-unavailable" or "database-unavailable" in unavailable["description"], (
            f"{method} {path}: {shown}, {unavailable['description']}"
        )
    loans = document["paths"]["/v1/loans"]["get"]["responses"]["503"]["content"][PROBLEM_JSON]["example"]
    assert (loans["type"].rsplit("/", 1)[1], loans["title"]) == ("database-unavailable", "The database is unavailable")
    accept = document["paths"]["/v1/quotes/{quote_id}/accept"]["post"]["responses"]["503"]
    assert "chain-unavailable; or database-unavailable" in accept["description"]


def test_every_loan_route_that_reads_its_row_documents_an_unreadable_record(document: dict[str, Any]) -> None:
    """A loan row that cannot be read answers 503 loan-record-unreadable on every route that reads it (the loan, its
    events, a repayment, a funding settlement), each saying so; the list leaves such a loan out. Before (fixed
    2026-11-29) only ``GET /v1/loans/{loan_id}`` said it."""
    paths = document["paths"]
    for path, method in (
        ("/v1/loans/{loan_id}", "get"),
        ("/v1/loans/{loan_id}/events", "get"),
        ("/v1/loans/{loan_id}/repayments", "post"),
        ("/v1/loans/{loan_id}/funding-settlement", "post"),
    ):
        unavailable = paths[path][method]["responses"]["503"]
        shown = unavailable["content"][PROBLEM_JSON]["example"]["type"]
        assert shown.endswith("/loan-record-unreadable") or "loan-record-unreadable" in unavailable["description"], (
            f"{method} {path}"
        )
    assert "loan-record-unreadable" not in str(paths["/v1/loans"]["get"]["responses"]["503"])


def test_an_operations_own_422_problem_is_shown_without_a_validation_errors_list(document: dict[str, Any]) -> None:
    """The KYC webhook's 422 is only ever ``kyc-event-unusable`` (an event the provider signed that cannot be
    applied), which names no fields; a validation error's example lists them."""
    unusable = document["paths"]["/v1/kyc/webhooks"]["post"]["responses"]["422"]
    example = unusable["content"][PROBLEM_JSON]["example"]
    assert example["type"].endswith("/kyc-event-unusable")
    assert "errors" not in example
    assert unusable["description"] == "The KYC event cannot be applied"
    invalid = document["paths"]["/v1/credit-requests"]["post"]["responses"]["422"]["content"][PROBLEM_JSON]
    assert invalid["example"]["errors"][0]["field"] == "term_days"


def test_a_credit_request_s_risk_documents_its_adverse_action_notice(document: dict[str, Any]) -> None:
    """``risk`` is free-form JSON; the notice a request not approved carries in it is typed (12 CFR 1002.9(a)(2))."""
    schemas = document["components"]["schemas"]
    risk = schemas["CreditRequestOut"]["properties"]["risk"]
    assert risk["properties"]["adverse_action_notice"] == {"$ref": "#/components/schemas/AdverseActionNoticeOut"}
    notice = schemas["AdverseActionNoticeOut"]
    assert set(notice["required"]) == {
        "action_taken",
        "statement",
        "creditor",
        "lenders",
        "reasons",
        "ecoa_notice",
        "agency",
        "given_at",
    }
    assert notice["properties"]["creditor"]["$ref"] == "#/components/schemas/NoticePartyOut"
    assert set(schemas["NoticePartyOut"]["required"]) == {"name", "address"}
    assert "right_to_reasons" in notice["properties"]  # optional: a notice kept from before 2026-11-29 has none
    lender = schemas["NoticeLenderOut"]["properties"]
    assert lender["reasons"]["items"] == {"$ref": "#/components/schemas/NoticeReasonOut"}
    # who each lender is (12 CFR 1002.9(g)), and whom to call (1002.9(a)(2)(ii)): optional, a notice kept from before
    # has neither; the admin API registers and lists a lender's legal name and address
    assert {"identity", "legal_name", "address", "pool", "identity_note"} <= set(lender)
    assert set(schemas["NoticePoolOut"]["required"]) == {"chain", "contract"}
    assert "telephone" in schemas["NoticePartyOut"]["properties"]
    for model in ("RegistrationIn", "RegistrationOut", "ListedProviderOut"):
        assert {"legal_name", "address"} <= set(schemas[model]["properties"]), model


def test_a_credit_request_s_refusals_document_their_adverse_action_notice(document: dict[str, Any]) -> None:
    """A credit denial never written as a request (the screening's 403, a velocity stop's 429 about the applicant)
    carries the notice in its problem: documented as a Problem with ``adverse_action_notice``."""
    refusal = document["components"]["schemas"]["CreditRequestRefusal"]
    assert refusal["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
    notice = refusal["allOf"][1]["properties"]["adverse_action_notice"]
    assert notice == {"$ref": "#/components/schemas/AdverseActionNoticeOut"}
    responses = document["paths"]["/v1/credit-requests"]["post"]["responses"]
    assert "adverse_action_notice" in responses["403"]["description"]
    assert "adverse_action_notice" in responses["429"]["description"]
    assert "(rule ip) does not" in responses["429"]["description"]
    accept = document["paths"]["/v1/quotes/{quote_id}/accept"]["post"]["responses"]["403"]
    assert accept["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
