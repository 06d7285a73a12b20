"""chain: the intents that act on one loan name the contract they call. The operator's ``markDefault``,
``cancelUnfunded``, ``holdLiquidation`` and ``releaseLiquidationHold``, the keeper's ``liquidate`` and
``claimCollateral`` and the relayer's ``claim-collateral`` were keyed ``<kind>:<chain id>:<loan id>…``, one per loan
ever; a later deployment of the contracts on the chain numbers its loans from 1 again, and its loan 1 was never
marked in default, held, released, cancelled, claimed or liquidated once the earlier deployment's loan 1 had been
(the key was taken). They are keyed ``<kind>:<chain id>:<contract>:<loan id>…`` now, the contract being the
intent's ``to`` (checksummed). The intents stored under the old keys, and their signed attempts, are rekeyed from
each intent's stored ``to_address``: an intent in flight at the upgrade is found, resumed and never sent again.

The downgrade drops the contract from the keys again; where two deployments' intents of one loan id would take the
same old key, the earliest keeps it and the others stay as they are (the old code does not see them: what it did).

Revision ID: 0037_intent_keys_name_contract
Revises: 0036_quote_borrower_status
"""

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from alembic import op
from eth_utils.address import to_checksum_address

revision = "0037_intent_keys_name_contract"
down_revision = "0036_quote_borrower_status"
branch_labels = None
depends_on = None

#: the intent kinds keyed by a loan (``aggregator.servicing.defaults``, ``aggregator.servicing.keeper``,
#: ``aggregator.repaying``), as of this revision
KINDS = (
    "markDefault",
    "cancelUnfunded",
    "holdLiquidation",
    "releaseLiquidationHold",
    "liquidate",
    "claimCollateral",
    "claim-collateral",
)
BATCH = 500

intents = sa.table(
    "chain_intents",
    sa.column("key", sa.String),
    sa.column("to_address", sa.String),
    sa.column("created_at", sa.String),
)
attempts = sa.table("chain_tx_attempts", sa.column("intent_key", sa.String))


def _parts(key: str) -> tuple[str, str, str] | None:
    """A key's kind, chain id and the rest (the loan id and what follows it, or the contract first); None for a key
    of none of these forms."""
    kind, _, rest = key.partition(":")
    chain_id, colon, rest = rest.partition(":")
    return (kind, chain_id, rest) if colon and rest else None


def _names_contract(rest: str) -> bool:
    """Whether what follows ``<kind>:<chain id>:`` in a key starts with a contract's address."""
    address, colon, _ = rest.partition(":")
    return bool(colon) and len(address) == 42 and address[:2].lower() == "0x"


def _loan_intents(bind: sa.Connection) -> list[tuple[str, str | None]]:
    """Every intent of the kinds above (key, to_address), the earliest first."""
    rows = bind.execute(
        sa.select(intents.c.key, intents.c.to_address)
        .where(sa.or_(*(intents.c.key.startswith(f"{kind}:") for kind in KINDS)))
        .order_by(intents.c.created_at, intents.c.key)
    )
    return [(str(key), to) for key, to in rows]


def _rekey(bind: sa.Connection, renames: Sequence[tuple[str, str]]) -> None:
    """Each intent and its attempts from its old key to its new one."""
    for start in range(0, len(renames), BATCH):
        batch = [{"old_key": old, "new_key": new} for old, new in renames[start : start + BATCH]]
        bind.execute(
            intents.update().where(intents.c.key == sa.bindparam("old_key")).values(key=sa.bindparam("new_key")),
            batch,
        )
        bind.execute(
            attempts.update()
            .where(attempts.c.intent_key == sa.bindparam("old_key"))
            .values(intent_key=sa.bindparam("new_key")),
            batch,
        )


def _upgraded(rows: Iterable[tuple[str, str | None]]) -> list[tuple[str, str]]:
    renames = []
    for key, to in rows:
        parts = _parts(key)
        if parts is None or to is None or _names_contract(parts[2]):
            continue
        kind, chain_id, rest = parts
        renames.append((key, f"{kind}:{chain_id}:{to_checksum_address(to)}:{rest}"))
    return renames


def _downgraded(rows: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    taken = {key for key, _ in rows}
    renames = []
    for key, _ in rows:
        parts = _parts(key)
        if parts is None or not _names_contract(parts[2]):
            continue
        kind, chain_id, rest = parts
        old = f"{kind}:{chain_id}:{rest.partition(':')[2]}"
        if old not in taken:  # another deployment's intent of the same loan id has it: this one stays
            taken.add(old)
            renames.append((key, old))
    return renames


def upgrade() -> None:
    bind = op.get_bind()
    _rekey(bind, _upgraded(_loan_intents(bind)))


def downgrade() -> None:
    bind = op.get_bind()
    _rekey(bind, _downgraded(_loan_intents(bind)))
