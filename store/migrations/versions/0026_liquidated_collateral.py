"""loans: the collateral a liquidation seized taken off the loan's collateral (data only). The ledger kept a loan's
whole collateral after a liquidation (the CollateralManager emits LoanLiquidated's collateralSeized and no
CollateralRemoved for it); loans recorded before the fix are corrected from their recorded liquidations once.

Revision ID: 0026_liquidated_collateral
Revises: 0025_chain_facts_event_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_liquidated_collateral"
down_revision = "0025_chain_facts_event_index"
branch_labels = None
depends_on = None

_loans = sa.table("loans", sa.column("id", sa.String), sa.column("collateral_amount", sa.String))
_liquidations = sa.table(
    "loan_liquidations", sa.column("loan_id", sa.String), sa.column("collateral_seized", sa.String)
)


def upgrade() -> None:
    bind = op.get_bind()
    seized: dict[str, int] = {}
    for loan_id, amount in bind.execute(sa.select(_liquidations.c.loan_id, _liquidations.c.collateral_seized)):
        seized[loan_id] = seized.get(loan_id, 0) + int(amount)  # uint256 as decimal strings: summed exactly here
    for loan_id, total in seized.items():
        held = bind.execute(sa.select(_loans.c.collateral_amount).where(_loans.c.id == loan_id)).scalar()
        if held is not None:
            corrected = str(max(0, int(held) - total))
            bind.execute(_loans.update().where(_loans.c.id == loan_id).values(collateral_amount=corrected))


def downgrade() -> None:
    """Nothing to undo: the corrected collateral is what the chain holds, under the old code too."""
