"""A borrower's file in ONE SQL statement: the account joined to its credit profile, its sealed identity, the KYC
applicant that identity was submitted with (its current KYC status) and its decided sanctions reviews (one row per
review, the rest repeated; one row when there is none: its review columns are NULL). Read alone
(``SqlBorrowerRepository.stored_file``) or behind the caller's API key (``read_caller``: the key and, for a
borrower's key, its file — the request path's first read, where it was six ORM reads).

SQLAlchemy Core on the tables' columns, built once: no ORM identity map, no statement built per call. It returns what
the repositories' separate reads return (the integration test compares them on SQLite and PostgreSQL), the reviews in a
fixed order (entry number, fingerprint; the reviews of a name not screened, which have no entry, last) where the
separate read had none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, select

from aggregator.borrower_store import BorrowerAccount, SealedIdentity, StoredFile
from compliance.kyc import KycState, KycStatus, KycTier
from compliance.sanctions.review import PriorReview, ReviewState
from risk.profile import CreditProfile
from store.api import ApiKeyRecord, ApiKeyRow, BorrowerRow
from store.autocommit import autocommit_connection
from store.compliance import BorrowerIdentityRow, KycApplicantRow, _reasons_in
from store.db import Database
from store.risk import CreditProfileRow
from store.sanctions_reviews import SanctionsReviewRow

_keys = ApiKeyRow.__table__
_accounts = BorrowerRow.__table__
_profiles = CreditProfileRow.__table__
_identities = BorrowerIdentityRow.__table__
_applicants = KycApplicantRow.__table__
_current = KycApplicantRow.__table__.alias("current_kyc")
_reviews = SanctionsReviewRow.__table__

_KEY_COLUMNS = (
    _keys.c.key_id,
    _keys.c.role,
    _keys.c.subject_id,
    _keys.c.label,
    _keys.c.created_at,
    _keys.c.expires_at,
    _keys.c.revoked_at,
    _keys.c.bootstrap,
)
_FILE_COLUMNS = (
    _accounts.c.id.label("account_id"),
    _accounts.c.wallet_address,
    _accounts.c.jurisdiction,
    _accounts.c.created_at.label("account_created_at"),
    _accounts.c.webhook_url,
    _accounts.c.webhook_secret_sealed,
    _profiles.c.profile,
    _identities.c.country.label("identity_country"),
    _identities.c.sealed_identity,
    _identities.c.updated_at.label("identity_updated_at"),
    _identities.c.applicant_id.label("identity_applicant_id"),
    _current.c.applicant_id.label("kyc_applicant_id"),
    _current.c.subject_id.label("kyc_subject_id"),
    _current.c.state.label("kyc_state"),
    _current.c.tier.label("kyc_tier"),
    _current.c.reasons.label("kyc_reasons"),
    _current.c.updated_at.label("kyc_updated_at"),
    _reviews.c.ent_num.label("review_ent_num"),
    _reviews.c.entry_fingerprint.label("review_fingerprint"),
    _reviews.c.state.label("review_state"),
    _reviews.c.identity_fingerprint.label("review_identity"),
)


def _with_file(accounts: Any) -> Any:
    """``accounts`` (a from clause holding the borrowers' table) outer-joined to the rest of the file."""
    return (
        accounts.outerjoin(_profiles, _profiles.c.borrower_id == _accounts.c.id)
        .outerjoin(_identities, _identities.c.subject_id == _accounts.c.id)
        # the applicant the identity on file was submitted with, not the newest one: a verdict on an applicant the
        # borrower has since replaced with another identity is kept, but is not the file's KYC status
        .outerjoin(
            _current,
            and_(_current.c.applicant_id == _identities.c.applicant_id, _current.c.subject_id == _accounts.c.id),
        )
        .outerjoin(
            _reviews,
            and_(_reviews.c.borrower_id == _accounts.c.id, _reviews.c.state != ReviewState.PENDING.value),
        )
    )


# NULLs sort first on SQLite and last on PostgreSQL: the entry-less reviews go last on both by the test before
_REVIEW_ORDER = (
    _reviews.c.ent_num.is_(None),
    _reviews.c.ent_num,
    _reviews.c.entry_fingerprint,
    _reviews.c.identity_fingerprint.is_(None),
    _reviews.c.identity_fingerprint,
)
FILE_BY_ID = (
    select(*_FILE_COLUMNS)
    .select_from(_with_file(_accounts))
    .where(_accounts.c.id == bindparam("borrower_id"))
    .order_by(*_REVIEW_ORDER)
)
# a borrower's key joins its account; any other role's key reads no file (its file columns are null)
_KEY_AND_ACCOUNT = _keys.outerjoin(_accounts, and_(_accounts.c.id == _keys.c.subject_id, _keys.c.role == "borrower"))
_CALLER = select(*_KEY_COLUMNS, *_FILE_COLUMNS).select_from(_with_file(_KEY_AND_ACCOUNT)).order_by(*_REVIEW_ORDER)
CALLER_BY_HASH = _CALLER.where(_keys.c.key_hash == bindparam("key_hash"))
CALLER_BY_ID = _CALLER.where(_keys.c.key_id == bindparam("key_id"))
KEY_BY_HASH = select(*_KEY_COLUMNS).where(_keys.c.key_hash == bindparam("key_hash"))
KEY_BY_ID = select(*_KEY_COLUMNS).where(_keys.c.key_id == bindparam("key_id"))


def stored_file(connection: Connection, borrower_id: str) -> StoredFile | None:
    """The borrower's file (None: no such account), one statement on ``connection``."""
    return _stored_file(connection.execute(FILE_BY_ID, {"borrower_id": borrower_id}).all())


def read_caller(
    database: Database, *, key_hash: str | None = None, key_id: str | None = None, with_file: bool = False
) -> tuple[ApiKeyRecord, StoredFile | None] | None:
    """The API key with this hash (or this id), and with ``with_file`` the file of the borrower it acts for (None for
    another role's key or a borrower key without an account); None when no key matches. One statement."""
    if (key_hash is None) == (key_id is None):
        raise ValueError("read_caller takes a key hash or a key id")
    by, value = ("key_hash", key_hash) if key_hash is not None else ("key_id", key_id)
    if with_file:
        statement = CALLER_BY_HASH if by == "key_hash" else CALLER_BY_ID
    else:
        statement = KEY_BY_HASH if by == "key_hash" else KEY_BY_ID
    # one statement is its own transaction: read in autocommit, one round trip to PostgreSQL where a transaction
    # opened for it costs three (BEGIN, the SELECT, and the pool's ROLLBACK when the connection goes back)
    with autocommit_connection(database.engine) as connection:
        rows = connection.execute(statement, {by: value}).all()
    if not rows:
        return None
    key = ApiKeyRecord(*rows[0][: len(_KEY_COLUMNS)])
    return key, _stored_file(rows) if with_file else None


def _stored_file(rows: Sequence[Row[Any, *tuple[Any, ...]]]) -> StoredFile | None:
    first = rows[0] if rows else None
    if first is None or first.account_id is None:
        return None
    account = BorrowerAccount(
        first.account_id,
        first.wallet_address,
        first.jurisdiction,
        first.account_created_at,
        first.webhook_url,
        first.webhook_secret_sealed,
    )
    identity = None
    if first.identity_country is not None:
        identity = SealedIdentity(
            first.identity_country, first.sealed_identity, first.identity_updated_at, first.identity_applicant_id
        )
    kyc = None
    if first.kyc_applicant_id is not None:
        kyc = KycStatus(
            first.kyc_applicant_id,
            first.kyc_subject_id,
            KycState(first.kyc_state),
            KycTier(first.kyc_tier),
            _reasons_in(first.kyc_reasons),
            first.kyc_updated_at,
        )
    reviews = tuple(
        PriorReview(row.review_ent_num, row.review_fingerprint, ReviewState(row.review_state), row.review_identity)
        for row in rows
        if row.review_state is not None  # an entry-less review (a name not screened) has no ent_num
    )
    profile = None if first.profile is None else CreditProfile.stored(first.profile)
    return StoredFile(account, profile, identity, kyc, reviews)
