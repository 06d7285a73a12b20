"""The API process's per-offer CPU of one credit request, in process: each offer disclosed (Regulation Z), checked
against the usury caps and the MLA, its decision record made and hashed, the kept offers ranked and signed as EIP-712
offers, one risk attestation per chain, the quotes built.

    uv run --frozen --no-sync python -m bench.offer_work                          # this tree, ms per request
    uv run --frozen --no-sync python -m bench.offer_work --before /tmp/main-tree  # A/B in one process
    uv run --frozen --no-sync python -m bench.offer_work --profile 30             # cProfile's top 30
    uv run --frozen --no-sync python -m bench.offer_work --fleet installments --term-days 360

The request is the benchmarks' (``bench/scale.py``: 1500.00 USDC for 30 days, a grade-B borrower in US-FL): ten
bank offers as ten simulated lenders of the default pricing answer it (a single payment at the grade's rate plus the
term premium, a 1% fee; their own expiries) and three pool offers, one per chain. Each request starts at its own
``now``, as a real one does. ``--fleet distinct`` gives each bank its own rate (no two offers alike); ``--fleet
installments`` also makes every other bank amortize monthly as the simulator's fintech does (a term of 60 days or
more; the payments it computed are checked against the disclosed ones). What is timed is
``aggregator.quote_pipeline``'s per-offer work after the answers: ``EarlyDisclosure`` disclosing and signing each
answer with its chain's nonce, the records hashed, then the ranking and ``QuoteSigning.sign`` (attestations,
quotes). No I/O.

``--before DIR`` imports the same modules again from another source tree (a ``git worktree`` or ``git archive`` of
the commit to compare with) into this process under their own names, and alternates the two trees request by
request (A B, B A, …): both see the same machine and the same allocator. Each tree's quotes are compared for equal
content first (the same disclosures, terms hashes, decision inputs hashes, digests and signatures, with the random
ids and the clock fixed)."""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, cast

#: the project's top-level packages: imported afresh for each tree
PACKAGES = ("aggregator", "api", "bench", "chain", "compliance", "contracts", "providers", "risk", "store", "tests")
BANKS, POOLS = 10, 3
SORT = "cumulative"
PRINCIPAL = 1_500_000_000  # 1500.00 USDC
TERM_DAYS = 30
CHAIN_NAMES = ("ethereum-local", "polygon-local", "arbitrum-local")


@dataclass
class Tree:
    """One source tree's modules and the objects the per-offer work runs on."""

    label: str
    run: Callable[[datetime], list[Any]]
    #: the tree's ``compliance.random_ids`` (the decision records' ids), None in a tree without it
    ids: ModuleType | None = None


def _has_module(root: Path | None, path: str) -> bool:
    return ((root or Path.cwd()) / path).is_file()


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".", 1)[0] in PACKAGES:
            del sys.modules[name]


def load_tree(label: str, root: Path | None, fleet: str = "same", term_days: int = TERM_DAYS) -> Tree:
    """The per-offer work as ``root``'s code does it (None: this tree, as imported normally)."""
    registry = importlib.import_module("prometheus_client").REGISTRY
    if root is not None:
        _purge()
        sys.path.insert(0, str(root))
        # the second tree's module-level metrics would clash with the first's in the process-wide registry
        registry.register = lambda collector: None
    try:
        modules = {
            name: importlib.import_module(name)
            for name in (
                "aggregator.assets",
                "aggregator.borrowers",
                "aggregator.early_disclosure",
                "aggregator.fanout",
                "aggregator.quote_offers",
                "providers.models",
                "risk.policy",
                "risk.profile",
                "tests.support.quoting",
            )
        }
        ids = (
            importlib.import_module("compliance.random_ids") if _has_module(root, "compliance/random_ids.py") else None
        )
        return Tree(label, _work(modules, fleet, term_days), ids)
    finally:
        if root is not None:
            del registry.register  # the class's own again
            sys.path.remove(str(root))
            _purge()  # the next tree (or this one) imports its own


class _Chain:
    """What the per-offer work reads of a ``ChainRuntime``: its name, id, contracts and the two EIP-712 domains,
    built once as ``ChainRuntime``'s are from its deployment record's checksummed addresses."""

    def __init__(self, m: dict[str, ModuleType], name: str, chain_id: int, aggregator: str, oracle: str) -> None:
        self.name, self.chain_id = name, chain_id
        self.record = m["tests.support.quoting"]._Record(
            {"CreditAggregator": aggregator, "CreditScoringOracle": oracle}
        )
        domain = importlib.import_module("contracts.typed_data").Domain
        self.aggregator_domain, self.oracle_domain = domain(chain_id, aggregator), domain(chain_id, oracle)


def _work(m: dict[str, ModuleType], fleet: str, term_days: int) -> Callable[[datetime], list[Any]]:
    importlib.import_module("chain.keccak").use_fast_keccak()  # as api.bootstrap does at start-up
    support, models, offers = m["tests.support.quoting"], m["providers.models"], m["aggregator.quote_offers"]
    assets_mod = m["aggregator.assets"]
    address = support._address
    chains = {
        name: _Chain(m, name, 31337 + i, address(0xA0 + i), address(0xB0 + i)) for i, name in enumerate(CHAIN_NAMES)
    }
    tokens = {name: address(0xC0 + i) for i, name in enumerate(CHAIN_NAMES)}
    usdc = assets_mod.Asset("USDC", 6, Decimal(1), tokens)
    weth = assets_mod.Asset("WETH", 18, Decimal(3000), dict(tokens))
    valid = offers.ValidRequest(usdc, PRINCIPAL, weth, 10**18, list(CHAIN_NAMES))
    compliance = support.shipped_compliance()
    borrower = support.borrower_file()
    facts = m["risk.profile"].CreditRequestFacts(
        amount=Decimal("1500.00"), asset="USDC", term_days=term_days, purpose="general", collateral_value=Decimal(3000)
    )
    decision = m["risk.policy"].assess(borrower.profile, facts, None)
    assert decision.approved
    assert decision.grade is not None
    signing = offers.QuoteSigning(
        cast(Any, chains), support.QUOTE_SIGNER, support.RISK_SIGNER, quote_ttl=timedelta(minutes=5)
    )
    pricing = importlib.import_module("providers.sim.pricing")
    price = pricing.price(PRINCIPAL, 6, term_days, decision.grade)
    installments = importlib.import_module("providers.sim.installments")
    product = importlib.import_module("providers.sim.fleet").InstallmentProduct()
    early, fanout = m["aggregator.early_disclosure"], m["aggregator.fanout"]
    nonces = {name: 7 + i for i, name in enumerate(CHAIN_NAMES)}

    def outcomes(now: datetime) -> list[Any]:
        answered = []
        for n in range(BANKS):  # the simulated lenders of bench.scale: the default pricing, their own expiries
            rate = price.rate_bps if fleet == "same" else price.rate_bps + 25 * n  # "distinct": each its own rate
            shape: dict[str, Any] = {"repayment": models.RepaymentShape.SINGLE}
            if fleet == "installments" and n % 2 == 1:  # every other lender amortizes, as the sim's fintech does
                fields = installments.installment_fields(product, PRINCIPAL, 6, term_days, rate, now.date())
                if fields is not None:
                    shape = {
                        "repayment": models.RepaymentShape.INSTALLMENTS,
                        "installments": fields["installments"],
                        "schedule": models.InstallmentSchedule.from_document(fields["schedule"]),
                    }
            offer = models.ProviderOffer(
                provider_id=f"sim-lender-{n:02d}",
                kind=models.ProviderKind.TRADITIONAL,
                asset="USDC",
                principal=PRINCIPAL,
                rate_bps=rate,
                origination_fee=price.origination_fee,
                term_days=term_days,
                expires_at=now + timedelta(seconds=300 + n),
                provider_ref=f"sim-lender-{n:02d}-q{uuid.uuid4().hex[:12]}",
                **shape,
            )
            answered.append(fanout.ProviderOutcome(offer.provider_id, "offered", "1 offer(s)", 100, [offer]))
        for i, name in enumerate(CHAIN_NAMES[:POOLS]):  # a pool per chain: its model rate plus the grade's spread
            pool = address(0xD0 + i)
            offer = models.ProviderOffer(
                provider_id=f"pool:{name}:USDC",
                kind=models.ProviderKind.POOL,
                asset="USDC",
                principal=PRINCIPAL,
                rate_bps=612 + 150,
                origination_fee=PRINCIPAL * 50 // 10_000,
                term_days=term_days,
                repayment=models.RepaymentShape.SINGLE,
                expires_at=now + timedelta(minutes=10),
                provider_ref=f"{pool}:612",
                chain=name,
                pool_address=pool,
            )
            answered.append(fanout.ProviderOutcome(offer.provider_id, "offered", "1 offer(s)", 5, [offer]))
        return answered

    def run(now: datetime) -> list[Any]:
        """One request's per-offer work, as ``QuotePipeline.request_credit`` does it once the nonces are known."""
        answered = outcomes(now)

        def disclose_and_sign(outcome: Any, found: list[Any], covered: bool) -> list[Any]:
            drafts: list[Any] = offers.disclose(compliance, chains, borrower, valid, [outcome], found, covered, now)
            for draft in drafts:
                draft.signed = signing.sign_offer(borrower, valid, draft, nonces[draft.chain.name], now)
            return drafts

        disclosing = early.EarlyDisclosure(disclose_and_sign)
        disclosing.covered(False)
        for outcome in answered:
            disclosing.answered(outcome)
        records: list[Any] = []
        drafts = disclosing.drafts(answered, False, records)
        ranked = offers.rank_drafts(valid, drafts)
        quotes = signing.sign(borrower, valid, decision, ranked, nonces, "request-1", now)
        return [quotes, [(r.inputs_hash, r.outcome, r.reasons) for r in records]]

    return run


def _comparable(result: list[Any]) -> list[Any]:
    quotes, records = result
    fields: tuple[str, ...] = (
        "provider_id",
        "rank",
        "chain_name",
        "offer",
        "offer_digest",
        "offer_signature",
        "attestation",
    )
    fields += ("attestation_signature", "disclosure", "expires_at")
    return [[tuple(getattr(q, name) for name in fields) for q in quotes], records]


def _fixed_ids(tree: Tree) -> Callable[[], None]:
    """uuid4 made deterministic (the quotes' ids and the lenders' references), undone by the returned function."""
    real = uuid.uuid4
    counter = iter(range(10**9))
    uuid.uuid4 = lambda: uuid.UUID(int=next(counter))
    # the decision records' ids, in a tree that cuts them from its own buffer (compliance.random_ids)
    buffered = None if tree.ids is None else tree.ids.uuid4
    if tree.ids is not None:
        setattr(tree.ids, "uuid4", uuid.uuid4)  # noqa: B010 - a module's function replaced for the check

    def undo() -> None:
        uuid.uuid4 = real
        if tree.ids is not None:
            setattr(tree.ids, "uuid4", buffered)  # noqa: B010

    return undo


def check_same(trees: list[Tree], now: datetime) -> None:
    results = []
    for tree in trees:
        undo = _fixed_ids(tree)
        try:
            results.append(_comparable(tree.run(now)))
        finally:
            undo()
    for tree, result in zip(trees[1:], results[1:], strict=True):
        if result != results[0]:
            raise SystemExit(f"{tree.label}'s quotes differ from {trees[0].label}'s")


def _now(n: int) -> datetime:
    """Each request its own start, as real ones have (microseconds included)."""
    return datetime(2026, 11, 27, 9, 30, tzinfo=UTC) + timedelta(seconds=n * 0.137)


def measure(trees: list[Tree], requests: int, rounds: int) -> dict[str, list[float]]:
    """CPU ms per request for each tree, ``rounds`` batches of ``requests``, the order alternating."""
    samples: dict[str, list[float]] = {tree.label: [] for tree in trees}
    counter = 0
    for r in range(rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        for tree in order:
            started = time.process_time()
            for _ in range(requests):
                tree.run(_now(counter))
                counter += 1
            samples[tree.label].append((time.process_time() - started) / requests * 1000)
    return samples


def profile(tree: Tree, requests: int, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for n in range(requests):
        tree.run(_now(n))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(SORT).print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another source tree to compare with, in this process")
    parser.add_argument("--requests", type=int, default=50, help="requests a batch")
    parser.add_argument("--rounds", type=int, default=20, help="batches per tree, alternating")
    parser.add_argument(
        "--fleet",
        choices=("same", "distinct", "installments"),
        default="same",
        help="the banks' offers: bench.scale's (all alike), each its own rate, or every other one in installments",
    )
    parser.add_argument("--term-days", type=int, default=TERM_DAYS, help="the request's term (installments: >= 60)")
    parser.add_argument("--profile", type=int, metavar="TOP", help="cProfile this tree instead, print the top TOP")
    args = parser.parse_args(argv)
    trees = []
    if args.before is not None:
        trees.append(load_tree("before", args.before.resolve(), args.fleet, args.term_days))
    trees.append(load_tree("after" if args.before is not None else "this tree", Path.cwd(), args.fleet, args.term_days))
    for n in range(5):  # warm: the lists, the caches of what every request shares
        for tree in trees:
            tree.run(_now(10**6 + n))
    if args.profile:
        print(profile(trees[-1], args.requests * 4, args.profile))
        return 0
    if len(trees) > 1:
        check_same(trees, _now(10**7))
        print("the trees' quotes, disclosures and decision records are equal")
    with open("/proc/loadavg") as load:
        print(f"load average: {load.read().split()[:3]}")
    samples = measure(trees, args.requests, args.rounds)
    print(
        f"{BANKS} bank offers ({args.fleet}) + {POOLS} pool offers a request, {args.term_days} days, "
        f"{args.requests} requests x {args.rounds} rounds"
    )
    medians = {label: statistics.median(values) for label, values in samples.items()}
    for label, values in samples.items():
        print(f"{label:>10}: median {medians[label]:.3f} ms/request (min {min(values):.3f}, max {max(values):.3f})")
    if len(trees) > 1:
        print(f"after / before: {medians['after'] / medians['before']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
