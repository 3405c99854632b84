"""OpenTelemetry, when ``opentelemetry-api`` is installed: the tenant on the current span and
in the Baggage.

The edge calls :func:`enter` for each request it serves a tenant: when the current span (the
server span an OpenTelemetry ASGI instrumentation opened outside the edge) records, it gets
the attributes ``tenant.id`` and ``tenant.slug``, and the Baggage gets the same two entries,
so spans made downstream, and services called with the propagated context, know the tenant.
Without the package every function here does nothing (:func:`available` is false), and the
edge does not call them.
"""

from __future__ import annotations

from typing import Any

from tenantry.context import BoundTenant

__all__ = ["ID", "SLUG", "available", "enter", "leave", "tag_span"]

ID = "tenant.id"
SLUG = "tenant.slug"

try:  # an optional dependency
    from opentelemetry import baggage as _baggage
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on what is installed
    _baggage = _context = _trace = None  # type: ignore[assignment]


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed."""
    return _trace is not None


def tag_span(bound: BoundTenant) -> None:
    """Put ``tenant.id`` and ``tenant.slug`` on the current span (if it records)."""
    if _trace is None:
        return
    span = _trace.get_current_span()
    if span.is_recording():
        span.set_attribute(ID, str(bound.id))
        span.set_attribute(SLUG, bound.slug)


def enter(bound: BoundTenant) -> Any:
    """Tag the current span and put the tenant in the Baggage; returns the token for
    :func:`leave`. Only while a span records (a tracer is configured and samples this
    request): otherwise nothing would carry either, and the request pays for one lookup
    (``opentelemetry-api`` comes with FastAPI, whether anyone traces or not)."""
    if _trace is None:
        return None
    span = _trace.get_current_span()
    if not span.is_recording():
        return None
    span.set_attribute(ID, str(bound.id))
    span.set_attribute(SLUG, bound.slug)
    ctx = _baggage.set_baggage(ID, str(bound.id))
    ctx = _baggage.set_baggage(SLUG, bound.slug, context=ctx)
    return _context.attach(ctx)


def leave(token: Any) -> None:
    """Undo :func:`enter`'s Baggage."""
    if token is not None and _context is not None:
        _context.detach(token)
