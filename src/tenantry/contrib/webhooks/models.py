"""The webhooks plugin's table: one row per delivery, in the tenant's own placement.

``webhooks_deliveries`` is tenant-scoped like any app table: deployed into the pooled schema,
every tenant schema and every tenant database, under the same row-level security, and moved
with the tenant. A delivery is written in the transaction of the change it reports (an
outbox), so an event is queued exactly when the change commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry.db.alchemy import TenantScoped

__all__ = ["STATUSES", "Base", "Delivery"]

STATUSES = ("pending", "delivered", "failed")


class Base(DeclarativeBase):
    pass


class Delivery(TenantScoped, Base):
    """One event to send to the tenant's endpoint, and how sending it went."""

    __tablename__ = "webhooks_deliveries"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {STATUSES}", name="webhooks_deliveries_status"),
        sa.UniqueConstraint("tenant_id", "event_id", name="webhooks_deliveries_event_key"),
        sa.Index("webhooks_deliveries_due", "tenant_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), default=uuid.uuid4)
    """The ``webhook-id``: the same on every attempt, so receivers can drop duplicates."""
    event: Mapped[str] = mapped_column(sa.String(160))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The body sent, as JSON (type, id, tenant, time, data)."""
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    url: Mapped[str | None] = mapped_column(sa.Text)
    """Where the last attempt went."""
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)

    def summary(self) -> dict[str, Any]:
        """What the plugin's routes show of a delivery (never the secret, nor the body)."""
        return {
            "id": self.id,
            "event_id": str(self.event_id),
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "response_status": self.response_status,
            "last_error": self.last_error,
        }
