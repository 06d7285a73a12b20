"""offchain_payments: a lender's payment is its loan's, not the chain's loan number's. The payments were kept and read
by (chain id, on-chain loan id, reference); a later deployment of the contracts on the chain numbers its loans from 1
again, and its loan N was credited with the earlier deployment's loan N's payments — its first installment
"completed" the disclosed total and was sent as paying the loan in full, which closed it and released its collateral
— and a lender's reference reused for it found the earlier loan's payment (answered with that one's transaction,
never sent). Each payment now names its loan's CreditAggregator (``contract``, filled from the loan's) and is unique
by (loan, reference). The operator's ``recordOffchainRepayment`` intents were keyed
``offchain-repayment:<chain id>:<loan id>:<reference>[:<attempt>]`` and are keyed
``offchain-repayment:<chain id>:<CreditAggregator>:<loan id>:<reference>[:<attempt>]`` now, the contract being the
intent's ``to`` (checksummed), as 0037 did for the servicing intents: the intents stored under the old keys, and
their signed attempts, are rekeyed from each intent's stored ``to_address``, so a payment in flight at the upgrade is
found under its new key and never sent again.

A payment that pays the loan in full was sent with the amount worked out at its first report, which every later
attempt sent again: a payoff retried days later (after the node did not take the operator's transaction) left those
days' interest owed and the loan open. The decision is kept now (``closes_loan``: those sent with a
``recorded_amount`` before), and each new attempt is sent as what the loan owes when it is sent.

The downgrade refuses when two deployments' loans of one number hold payments of one reference (the old key cannot
hold both): wind them down first. It drops the contract from the intents' keys again; where two deployments' intents
would take the same old key, the earliest keeps it and the others stay as they are (0037's downgrade).

Revision ID: 0038_offchain_payments_contract
Revises: 0037_intent_keys_name_contract
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eth_utils.address import to_checksum_address

revision = "0038_offchain_payments_contract"
down_revision = "0037_intent_keys_name_contract"
branch_labels = None
depends_on = None

payments = sa.table(
    "offchain_payments",
    sa.column("id", sa.Integer),
    sa.column("loan_id", sa.String),
    sa.column("chain_id", sa.BigInteger),
    sa.column("onchain_loan_id", sa.BigInteger),
    sa.column("reference", sa.String),
    sa.column("contract", sa.String),
    sa.column("recorded_amount", sa.String),
    sa.column("closes_loan", sa.Boolean),
)
loans = sa.table("loans", sa.column("id", sa.String), sa.column("contract", sa.String))
intents = sa.table(
    "chain_intents",
    sa.column("key", sa.String),
    sa.column("to_address", sa.String),
    sa.column("created_at", sa.String),
)
attempts = sa.table("chain_tx_attempts", sa.column("intent_key", sa.String))
KIND = "offchain-repayment"
BATCH = 500


def _payment_intents(bind: sa.Connection) -> list[tuple[str, str | None]]:
    """Every ``offchain-repayment`` intent (key, to_address), the earliest first."""
    rows = bind.execute(
        sa.select(intents.c.key, intents.c.to_address)
        .where(intents.c.key.startswith(f"{KIND}:"))
        .order_by(intents.c.created_at, intents.c.key)
    )
    return [(str(key), to) for key, to in rows]


def _parts(key: str) -> tuple[str, str] | None:
    """A key's chain id and the rest (the loan id and what follows it, or the contract first)."""
    _, _, rest = key.partition(":")
    chain_id, colon, rest = rest.partition(":")
    return (chain_id, rest) if colon and rest else None


def _names_contract(rest: str) -> bool:
    """Whether what follows ``offchain-repayment:<chain id>:`` in a key starts with a contract's address."""
    address, colon, _ = rest.partition(":")
    return bool(colon) and len(address) == 42 and address[:2].lower() == "0x"


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


def _upgraded(rows: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    renames = []
    for key, to in rows:
        parts = _parts(key)
        if parts is None or to is None or _names_contract(parts[1]):
            continue
        chain_id, rest = parts
        renames.append((key, f"{KIND}:{chain_id}:{to_checksum_address(to)}:{rest}"))
    return renames


def _downgraded(rows: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    taken = {key for key, _ in rows}
    renames = []
    for key, _ in rows:
        parts = _parts(key)
        if parts is None or not _names_contract(parts[1]):
            continue
        chain_id, rest = parts
        old = f"{KIND}:{chain_id}:{rest.partition(':')[2]}"
        if old not in taken:  # another deployment's intent of the same loan id has it: this one stays
            taken.add(old)
            renames.append((key, old))
    return renames


def upgrade() -> None:
    with op.batch_alter_table("offchain_payments") as batch:
        batch.add_column(sa.Column("contract", sa.String(length=42), nullable=True))
        batch.add_column(sa.Column("closes_loan", sa.Boolean(), server_default=sa.false(), nullable=False))
    # every payment has its loan (a foreign key, deleted with it)
    op.execute(
        payments.update().values(
            contract=sa.select(loans.c.contract).where(loans.c.id == payments.c.loan_id).scalar_subquery()
        )
    )
    # the payments closing their loan so far: those sent as what the loan owed, more than reported
    op.execute(payments.update().where(payments.c.recorded_amount.is_not(None)).values(closes_loan=True))
    with op.batch_alter_table("offchain_payments") as batch:
        batch.alter_column("contract", existing_type=sa.String(length=42), nullable=False)
        batch.drop_constraint("uq_offchain_payments_chain_id", type_="unique")
        batch.create_unique_constraint(op.f("uq_offchain_payments_loan_id"), ["loan_id", "reference"])
    bind = op.get_bind()
    _rekey(bind, _upgraded(_payment_intents(bind)))


def _shared_references(bind: sa.Connection) -> list[tuple[int, int, str]]:
    """(chain id, loan number, reference) held by payments of more than one loan."""
    rows = bind.execute(
        sa.select(payments.c.chain_id, payments.c.onchain_loan_id, payments.c.reference)
        .group_by(payments.c.chain_id, payments.c.onchain_loan_id, payments.c.reference)
        .having(sa.func.count() > 1)
    )
    return [(int(chain_id), int(number), str(reference)) for chain_id, number, reference in rows]


def downgrade() -> None:
    bind = op.get_bind()
    shared = _shared_references(bind)
    if shared:
        raise RuntimeError(
            "cannot downgrade below 0038: payments of loans of two deployments share (chain id, loan number, "
            f"reference) {shared[:5]}, which the old unique key cannot hold"
        )
    with op.batch_alter_table("offchain_payments") as batch:
        batch.drop_constraint("uq_offchain_payments_loan_id", type_="unique")
        batch.create_unique_constraint(
            op.f("uq_offchain_payments_chain_id"), ["chain_id", "onchain_loan_id", "reference"]
        )
        batch.drop_column("contract")
        batch.drop_column("closes_loan")
    _rekey(bind, _downgraded(_payment_intents(bind)))
