"""The tenant context (and the actor beside it): tenantry's only mutable globals.

One :class:`contextvars.ContextVar` holds the tenant bound to the current thread or asyncio
task; a second one, beside it, holds the actor control-plane changes are audited as while a
request of the admin API runs (:meth:`tenantry.Tenantry.acting_as`). Everything else in
tenantry is passed explicitly. asyncio tasks copy the context when
they are created, so a task sees the tenant bound where it was spawned and its own bindings
never reach its parent. Threads do not inherit context: hand work to a thread with
:func:`contextvars.copy_context` (``ctx.run(fn)``) or bind the tenant inside it.

Every binding is undone with the token that made it, so nesting works and nothing outlives its
``with`` block, even when the block raises. The tokens of reusable scope objects (what
``tn.tenant(...)`` returns) are kept per context too (:func:`enter`, :func:`leave`): one scope
object shared by several threads or tasks binds and unbinds each of them on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from tenantry.core.placement import Route
from tenantry.errors import NoTenantBound

__all__ = ["BoundTenant", "bind", "bound_actor", "current", "enter", "leave", "require"]


@dataclass(frozen=True, slots=True)
class BoundTenant:
    """What the context knows of the tenant it serves, and the route to its rows."""

    id: uuid.UUID
    slug: str
    route: Route | None = None
    #: the catalog's epoch of the tenant when it was resolved: signed into every transaction's
    #: binding, so a database refuses a binding made before the tenant moved or was suspended
    epoch: int = 0
    #: the settings its transactions run with (its plan's statement timeout, work_mem, ...;
    #: see :func:`tenantry.core.limits.database_settings`), set by the bind
    settings: tuple[tuple[str, str], ...] = ()
    #: the most connections it may hold at once in this process (its plan's
    #: ``db_connections``; ``None``: no cap), counted over every pool (see
    #: :mod:`tenantry.db.connection_caps`)
    connections: int | None = None


_current: ContextVar[BoundTenant | None] = ContextVar("tenantry.tenant", default=None)


def current() -> BoundTenant | None:
    """The tenant bound to this context, or ``None``."""
    return _current.get()


def require() -> BoundTenant:
    """The bound tenant; raises :class:`NoTenantBound` when there is none."""
    bound = _current.get()
    if bound is None:
        raise NoTenantBound("no tenant is bound: wrap tenant-scoped work in `with tn.tenant(slug):`")
    return bound


@contextmanager
def bind(tenant: BoundTenant | None) -> Iterator[BoundTenant | None]:
    """Bind ``tenant`` (or explicitly no tenant) for the ``with`` block."""
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


# (scope object, the token its entry made) for every scope entered and not yet left in this
# context: a stack per thread or task, never shared, so two threads entering one scope object
# each undo their own binding
_entered: ContextVar[tuple[tuple[object, Token[BoundTenant | None]], ...]] = ContextVar("tenantry.entered", default=())


def enter(scope: object, tenant: BoundTenant | None) -> None:
    """Bind ``tenant`` on behalf of ``scope`` (a reusable scope object) in this context."""
    token = _current.set(tenant)
    _entered.set((*_entered.get(), (scope, token)))


def leave(scope: object) -> None:
    """Undo the innermost binding ``scope`` made in this context.

    Raises :class:`RuntimeError` when ``scope`` is not the innermost scope entered here (left
    out of order, or left in another thread or task than it was entered in); the binding is
    then undone all the same down to ``scope``'s, so none outlives its block.
    """
    stack = _entered.get()
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] is scope:
            break
    else:
        raise RuntimeError("this tenant scope was not entered in this thread or task")
    _entered.set(stack[:depth])
    for _scope, token in reversed(stack[depth:]):
        _current.reset(token)
    if depth != len(stack) - 1:
        raise RuntimeError("tenant scopes were left out of order: the inner bindings are undone too")


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
