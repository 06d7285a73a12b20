"""A borrower's KYC submission extends no process-wide structure: no log filter learns names, the in-memory maps
(the in-process provider's applicants and outbox, the MLA cache, the replay guard) stay within their bounds, and the
objects the collector tracks do not grow from the 1,000th submission to the 10,000th, nor does the traced memory
after that."""

from __future__ import annotations

import gc
import logging
import os
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from aggregator.borrowers import BorrowerFiles
from api.logs import JsonFormatter
from compliance.kyc import (
    IdentityDocument,
    IdentityProfile,
    InMemoryReplayGuard,
    LocalKycProvider,
    review_of,
    verify_webhook,
)
from compliance.mla import LocalMlaStatusProvider, MlaQuery, MlaStatusCache
from compliance.pii import Masked, PiiMaskingFilter
from compliance.sanctions import names
from store.borrowers import SqlBorrowerStore
from store.db import Database
from store.keystore import SqlKeyStore

pytestmark = pytest.mark.integration

SECRET = b"kyc-secret"
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
BOUND = 500


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The API's handler (JSON formatter, safety-net filter) on the service's loggers, writing to a file (the log's
    destination is outside the process, as in production)."""
    path = tmp_path / "kyc.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PiiMaskingFilter())
    loggers = [logging.getLogger("aggregator.borrowers"), logging.getLogger("creditmesh.test.kyc")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not into pytest's capture, which keeps every record
    yield path
    for logger in loggers:
        logger.removeHandler(handler)
        logger.propagate = True
    handler.close()


def _submission(n: int) -> tuple[IdentityProfile, IdentityDocument]:
    profile = IdentityProfile(f"Given{n}", f"Family{n}", date(1990, 1, 1 + n % 28), "US-FL")
    document = IdentityDocument(
        "passport", f"P{n:07d}", profile.first_name, profile.last_name, profile.date_of_birth, "US", date(2031, 1, 1)
    )
    return profile, document


async def _submit(
    n: int, kyc: LocalKycProvider, mla: MlaStatusCache, replays: InMemoryReplayGuard, log: logging.Logger
) -> None:
    """What a submission does in the process: the provider's applicant and session, its signed verdict verified,
    the MLA status asked, and the log line with the names (masked at the call site)."""
    profile, document = _submission(n)
    applicant = await kyc.create_applicant(f"b-{n}", profile, NOW)
    await kyc.submit_document(applicant.applicant_id, document, NOW)
    body, headers = kyc.outbox[-1]
    review = review_of(verify_webhook(body, headers, SECRET, NOW, replays))
    query = MlaQuery(profile.last_name, profile.first_name, profile.date_of_birth, f"{n:09d}", NOW.date())
    await mla.status(f"b-{n}", query, NOW)
    log.info("KYC of %s %s (borrower %s): %s", Masked(profile.first_name), Masked(profile.last_name), n, review.state)


def _empty_the_bounded_caches() -> None:
    """The name matcher's memo caches (``functools.lru_cache``, which KYC's name comparison also goes through) are
    bounded, which the test asserts; they are emptied at each measuring point, so what is left is what would grow
    without bound."""
    for cache in MATCHER_CACHES:
        cache.cache_clear()
    gc.collect()


MATCHER_CACHES = [f for f in vars(names).values() if hasattr(f, "cache_info")]


async def test_ten_thousand_kyc_submissions_grow_no_process_wide_structure(log_file: Path) -> None:
    assert MATCHER_CACHES, "the name matcher memoizes (spelling keys of submitted names)"
    assert all(cache.cache_info().maxsize is not None for cache in MATCHER_CACHES), "each cache is bounded"
    kyc = LocalKycProvider(SECRET, max_applicants=BOUND)
    mla = MlaStatusCache(LocalMlaStatusProvider(), capacity=BOUND)
    replays = InMemoryReplayGuard(capacity=BOUND)
    log = logging.getLogger("creditmesh.test.kyc")
    filters_before = [(h, list(h.filters)) for h in logging.getLogger().handlers]
    for n in range(1_000):
        await _submit(n, kyc, mla, replays, log)
    _empty_the_bounded_caches()
    objects_at_1_000 = len(gc.get_objects())
    for n in range(1_000, 10_000):
        await _submit(n, kyc, mla, replays, log)
    _empty_the_bounded_caches()
    objects_at_10_000 = len(gc.get_objects())
    # and byte by byte, over two more thousands (tracemalloc is slow): the first replaces every bounded entry with
    # a traced one, so the second compares like with like; ~2,000 names kept would be ~150 KiB
    tracemalloc.start()
    try:
        for n in range(10_000, 11_000):
            await _submit(n, kyc, mla, replays, log)
        _empty_the_bounded_caches()
        before = tracemalloc.take_snapshot()
        for n in range(11_000, 12_000):
            await _submit(n, kyc, mla, replays, log)
        _empty_the_bounded_caches()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    ours = [
        stat
        for stat in after.compare_to(before, "filename")
        if any(part in stat.traceback[0].filename for part in ("/compliance/", "/api/", "/aggregator/", "/logging/"))
    ]
    assert sum(stat.size_diff for stat in ours) < 32 * 1024, [str(stat) for stat in ours[:5]]
    assert objects_at_10_000 - objects_at_1_000 < 500, (objects_at_1_000, objects_at_10_000)
    assert len(kyc.outbox) == len(mla) == BOUND
    assert [(h, list(h.filters)) for h in logging.getLogger().handlers] == filters_before
    text = log_file.read_text()  # noqa: ASYNC240 - after the loop, a test
    assert "KYC of G********* F********** (borrower 11999)" in text
    assert "Given11999" not in text


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_ten_thousand_kyc_submissions_through_the_borrower_files(tmp_path: Path, log_file: Path) -> None:
    """The same through the service with its SQLite databases (minutes on a loaded machine: behind ``-m slow``;
    ``CREDITMESH_KYC_SUBMISSIONS`` changes the count)."""
    count = int(os.environ.get("CREDITMESH_KYC_SUBMISSIONS", "10000"))
    database = Database(f"sqlite:///{tmp_path / 'kyc.db'}")
    database.migrate()
    keys = SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}", bytes(31) + b"\x01")
    files = BorrowerFiles(SqlBorrowerStore(database), keys)
    kyc = LocalKycProvider(SECRET, max_applicants=BOUND)
    sizes = []
    for n in range(count):
        profile, document = _submission(n)
        await files.verify_identity(f"b-{n}", profile, document, kyc)
        body, headers = kyc.outbox[-1]
        files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))
        if n in (count // 10 - 1, count - 1):
            _empty_the_bounded_caches()
            sizes.append(len(gc.get_objects()))
    database.dispose()
    keys.dispose()
    assert sizes[1] - sizes[0] < 2_000, sizes
    assert len(kyc.outbox) == min(BOUND, count)
