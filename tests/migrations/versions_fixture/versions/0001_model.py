"""The model app as tests/model_app.py declares it: projects, tasks, comments.

Revision ID: 0001_model
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_model"
down_revision = None
branch_labels = None
depends_on = None

TENANT_ID = sa.text("tenantry.require_tenant_id()")


def _keys() -> list[sa.Column]:
    return [
        sa.Column("tenant_id", sa.Uuid(), server_default=TENANT_ID, nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "projects",
        *_keys(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_table(
        "tasks",
        *_keys(),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Enum("low", "high", name="priority"), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(["tenant_id", "project_id"], ["projects.tenant_id", "projects.id"], ondelete="CASCADE"),
    )
    op.create_index("tasks_by_title", "tasks", ["tenant_id", "title"])
    op.create_table(
        "comments",
        *_keys(),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("comments")
    op.drop_table("tasks")
    op.drop_table("projects")
    sa.Enum(name="priority").drop(op.get_bind())
