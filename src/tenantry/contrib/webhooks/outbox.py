"""Queueing events: a delivery row added to the caller's session, committed with its change.

::

    project = Project(name=name)
    session.add(project)
    await session.flush()
    await webhooks.aqueue(tn, session, "project.created", {"id": project.id, "name": name})
    await session.commit()       # the project and its delivery, or neither

Nothing is queued for a tenant the plugin is switched off for, one without an endpoint, or
one whose config does not subscribe to the event: the call returns ``None`` and the app
carries on.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from datetime import time as time_
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tenantry import context
from tenantry.contrib.webhooks.config import EVENT_NAME, WebhooksConfig, subscribed
from tenantry.contrib.webhooks.models import Delivery
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = ["MAX_PAYLOAD_BYTES", "aqueue", "build", "queue"]

NAME = "webhooks"
#: largest event body
MAX_PAYLOAD_BYTES = 256 * 1024


def build(tn: Tenantry, event: str, data: Mapping[str, Any]) -> Delivery | None:
    """The delivery of ``event`` with ``data`` for the bound tenant, or ``None`` when none is
    due (plugin off, no endpoint, not subscribed). ``data`` must be JSON (dates, times, UUIDs and decimals become text)."""
    if not isinstance(event, str) or not EVENT_NAME.fullmatch(event):
        raise InvalidInput(f"webhook event {str(event)[:60]!r} must be dotted lowercase words, like task.created")
    bound = context.require()
    if not tn.plugins.is_enabled(NAME):
        return None
    config: WebhooksConfig = getattr(tn.config.current(), NAME)
    if config.url is None or not subscribed(config.events, event):
        return None
    event_id = uuid.uuid4()
    try:
        payload = json.loads(
            json.dumps(
                {
                    "type": event,
                    "id": str(event_id),
                    "tenant": bound.slug,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "data": dict(data),
                },
                default=_plain,
                allow_nan=False,
            )
        )
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"webhook data of {event} is not JSON: {err}") from err
    if len(json.dumps(payload)) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"webhook data of {event} is larger than {MAX_PAYLOAD_BYTES} bytes")
    return Delivery(event=event, event_id=event_id, payload=payload)


def _plain(value: object) -> str:
    """What JSON lacks, as text: times and dates (ISO 8601), UUIDs, decimals."""
    if isinstance(value, (datetime, date, time_)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def queue(tn: Tenantry, session: Session, event: str, data: Mapping[str, Any]) -> Delivery | None:
    """Add the delivery of ``event`` to ``session`` (a session of ``tn.engine()`` for the bound
    tenant); it commits with the session's transaction."""
    delivery = build(tn, event, data)
    if delivery is not None:
        session.add(delivery)
    return delivery


async def aqueue(tn: Tenantry, session: AsyncSession, event: str, data: Mapping[str, Any]) -> Delivery | None:
    """:func:`queue` for an async session; the plugin's settings and the tenant's config are
    read off the event loop when they are not cached yet."""
    delivery = await asyncio.to_thread(build, tn, event, data)
    if delivery is not None:
        session.add(delivery)
    return delivery
