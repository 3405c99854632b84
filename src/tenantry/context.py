"""The tenant context (and the actor beside it): tenantry's only mutable globals.

One :class:`contextvars.ContextVar` holds the tenant bound to the current thread or asyncio
task; a second one, beside it, holds the actor control-plane changes are audited as while a
request of the admin API runs (:meth:`tenantry.Tenantry.acting_as`). Everything else in
tenantry is passed explicitly. asyncio tasks copy the context when
they are created, so a task sees the tenant bound where it was spawned and its own bindings
never reach its parent. Threads do not inherit context: hand work to a thread with
:func:`contextvars.copy_context` (``ctx.run(fn)``) or bind the tenant inside it.

Every binding is undone with the token that made it, so nesting works and nothing outlives its
``with`` block, even when the block raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from tenantry.core.placement import Route
from tenantry.errors import NoTenantBound

__all__ = ["BoundTenant", "bind", "bound_actor", "current", "require"]


@dataclass(frozen=True, slots=True)
class BoundTenant:
    """What the context knows of the tenant it serves, and the route to its rows."""

    id: uuid.UUID
    slug: str
    route: Route | None = None


_current: ContextVar[BoundTenant | None] = ContextVar("tenantry.tenant", default=None)


def current() -> BoundTenant | None:
    """The tenant bound to this context, or ``None``."""
    return _current.get()


def require() -> BoundTenant:
    """The bound tenant; raises :class:`NoTenantBound` when there is none."""
    bound = _current.get()
    if bound is None:
        raise NoTenantBound(
            "no tenant is bound: wrap tenant-scoped work in `with tn.tenant(slug):`"
        )
    return bound


@contextmanager
def bind(tenant: BoundTenant | None) -> Iterator[BoundTenant | None]:
    """Bind ``tenant`` (or explicitly no tenant) for the ``with`` block."""
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


def _set(tenant: BoundTenant | None) -> Token[BoundTenant | None]:
    """Bind without a ``with`` block; undo with :func:`_reset` and the returned token."""
    return _current.set(tenant)


def _reset(token: Token[BoundTenant | None]) -> None:
    _current.reset(token)


# (the Tenantry it applies to, the actor): several Tenantry objects in one process each keep
# their own actor, and a binding is undone with its token like the tenant's
_actor: ContextVar[tuple[object, str] | None] = ContextVar("tenantry.actor", default=None)


def bound_actor(owner: object) -> str | None:
    """The actor bound for ``owner`` (a Tenantry) in this context, or ``None``."""
    bound = _actor.get()
    return bound[1] if bound is not None and bound[0] is owner else None


def _set_actor(owner: object, actor: str) -> Token[tuple[object, str] | None]:
    return _actor.set((owner, actor))


def _reset_actor(token: Token[tuple[object, str] | None]) -> None:
    _actor.reset(token)
