"""Tasks get an estimate; a new tenant table of labels.

Revision ID: 0002_labels
Revises: 0001_model
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_labels"
down_revision = "0001_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("estimate", sa.Integer(), nullable=True))
    op.create_table(
        "labels",
        sa.Column("tenant_id", sa.Uuid(), server_default=sa.text("tenantry.require_tenant_id()"), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("labels")
    op.drop_column("tasks", "estimate")
