"""The ledger plugin's second revision: items get a note.

Revision ID: l002_note
Revises: l001_items
"""

import sqlalchemy as sa
from alembic import op

revision = "l002_note"
down_revision = "l001_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_items", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("ledger_items", "note")
