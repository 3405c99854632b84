"""The tracker's tables: members, projects, tasks and comments of one tenant.

Every table is tenant-scoped (:class:`tenantry.TenantScoped` adds the tenant column leading
the primary key and fills it from the bound tenant). The only place the tenant column is
named is below, in the composite foreign keys and unique keys: PostgreSQL checks foreign keys
without row-level security, so a key that left the tenant out could point at another
tenant's row (tenantry refuses to deploy such a table).

Table names carry a ``tracker_`` prefix so the demo can share a database with other apps.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import TenantScoped

__all__ = ["Base", "Comment", "Member", "Priority", "Project", "Role", "Task", "TaskStatus"]


class Base(DeclarativeBase):
    pass


class Role(enum.Enum):
    owner = "owner"
    admin = "admin"
    member = "member"


class TaskStatus(enum.Enum):
    todo = "todo"
    doing = "doing"
    done = "done"


class Priority(enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


def _created_at() -> Mapped[datetime]:
    return mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class Member(TenantScoped, Base):
    """A person in the tenant's organisation (who logs in, owns projects, writes comments)."""

    __tablename__ = "tracker_members"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "email", name="tracker_members_email_key"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[Role] = mapped_column(sa.Enum(Role, name="tracker_role"), default=Role.member)
    title: Mapped[str | None] = mapped_column(sa.String(120))
    created_at: Mapped[datetime] = _created_at()


class Project(TenantScoped, Base):
    __tablename__ = "tracker_projects"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "owner_id"],
            ["tracker_members.tenant_id", "tracker_members.id"],
            ondelete="SET NULL (owner_id)",
        ),
        sa.UniqueConstraint("tenant_id", "key", name="tracker_projects_key_key"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(10))
    """Short code shown in front of task numbers (``RKT``)."""
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    owner_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    archived: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = _created_at()


class Task(TenantScoped, Base):
    __tablename__ = "tracker_tasks"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "project_id"], ["tracker_projects.tenant_id", "tracker_projects.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "assignee_id"],
            ["tracker_members.tenant_id", "tracker_members.id"],
            ondelete="SET NULL (assignee_id)",
        ),
        sa.Index("tracker_tasks_by_project", "tenant_id", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.BigInteger)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[TaskStatus] = mapped_column(sa.Enum(TaskStatus, name="tracker_task_status"), default=TaskStatus.todo)
    priority: Mapped[Priority] = mapped_column(sa.Enum(Priority, name="tracker_priority"), default=Priority.normal)
    assignee_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    due_on: Mapped[date | None] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = _created_at()


class Comment(TenantScoped, Base):
    __tablename__ = "tracker_comments"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "task_id"], ["tracker_tasks.tenant_id", "tracker_tasks.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tenant_id", "author_id"], ["tracker_members.tenant_id", "tracker_members.id"]),
        sa.Index("tracker_comments_by_task", "tenant_id", "task_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.BigInteger)
    author_id: Mapped[int] = mapped_column(sa.BigInteger)
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created_at()
