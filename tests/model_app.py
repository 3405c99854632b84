"""The model app of the test suite: a small project tracker with related tenant tables.

Every foreign key includes ``tenant_id``, as tenantry requires.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import TenantScoped


class Base(DeclarativeBase):
    pass


class Priority(enum.Enum):
    low = "low"
    high = "high"


class Project(TenantScoped, Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class Task(TenantScoped, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "project_id"], ["projects.tenant_id", "projects.id"], ondelete="CASCADE"),
        sa.Index("tasks_by_title", "tenant_id", "title"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.BigInteger)
    title: Mapped[str] = mapped_column(sa.Text)
    points: Mapped[int] = mapped_column(sa.Integer, default=1)
    priority: Mapped[Priority] = mapped_column(sa.Enum(Priority, name="priority"), default=Priority.low)
    done: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Comment(TenantScoped, Base):
    __tablename__ = "comments"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.BigInteger)
    body: Mapped[str] = mapped_column(sa.Text)


TABLES = ("projects", "tasks", "comments")
