"""The ledger plugin's first revision: its items table (the base of the branch "ledger").

Revision ID: l001_items
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "l001_items"
down_revision = None
branch_labels = ("ledger",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_items",
        sa.Column("tenant_id", sa.Uuid(), server_default=sa.text("tenantry.require_tenant_id()"), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("ledger_items")
