"""``tn.flags``: feature flags, defined in the catalog and evaluated from a per-process cache.

Control-plane calls (``create``, ``get``, ``list``, ``update``, ``kill``, ``unkill``,
``delete``) read or write ``tenantry.flags``. Each change is validated, audited and announced
(``NOTIFY``) in one transaction, and this process's cache forgets the flags at once; the
others do within a second. Definitions are validated by
:class:`~tenantry.tenant_config.evaluation.FlagSpec` before anything is written: a bad one
raises :class:`~tenantry.ConfigInvalid` naming the path (``rules[0].when[0].op: ...``) and
saves nothing. Creating a flag that exists with the same definition, killing a killed flag,
and deleting a missing one are no-ops.

Serving calls (``enabled``, ``value``, ``evaluate``, ``evaluate_all``) are for the tenant
bound to the context (or the one named) and read through the cache::

    with tn.tenant("acme"):
        if tn.flags.enabled("new-editor"):
            ...
        theme = tn.flags.value("theme", default="light", user=user.id)

>>> tn.flags.create({"key": "new-editor", "rollout": 25}).spec.rollout
{'on': 25.0, 'off': 75.0}
>>> tn.flags.evaluate("new-editor", tenant="acme").reason
'SPLIT'
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from time import time
from typing import Any

import psycopg

from tenantry import context
from tenantry.core.events import EventKind
from tenantry.db.catalog import audit
from tenantry.db.catalog.events import notify_flag
from tenantry.errors import ConfigInvalid, FlagExists, FlagNotFound, InvalidInput
from tenantry.tenant_config import evaluation
from tenantry.tenant_config import records as store
from tenantry.tenant_config.evaluation import Evaluation
from tenantry.tenant_config.live import ALL_FLAGS, Live
from tenantry.tenant_config.plane import ControlPlane
from tenantry.tenant_config.records import FlagRecord

__all__ = ["FlagRecord", "Flags"]


class Flags:
    """Feature flags of one :class:`~tenantry.Tenantry` (use ``tn.flags``).

    Evaluations come from the process's cache (no database round trip once warm). ``user``
    makes a rollout split users within the tenant; ``attributes`` are extra values rules may
    test (tenantry's own attributes, such as ``plan``, cannot be overridden). ``tenant`` (slug
    or id) evaluates for that tenant instead of the bound one, for admin tools.
    """

    def __init__(self, plane: ControlPlane, live: Live) -> None:
        self._plane = plane
        self._live = live

    # -- control plane ----------------------------------------------------------------------
    def list(self, *, after: str | None = None, limit: int | None = None) -> builtins.list[FlagRecord]:
        """Flags by key; ``after`` the previous page's last key, at most ``limit`` of them."""
        with self._plane.admin() as conn:
            if after is None and limit is None:
                return store.load_flags(conn)
            return store.list_flags(conn, after=after, limit=limit)

    def get(self, key: str) -> FlagRecord:
        """The flag's definition as the catalog holds it now; :class:`FlagNotFound` if none."""
        evaluation.check_key(key)
        with self._plane.admin() as conn:
            found = store.read_flag(conn, key)
        if found is None:
            raise FlagNotFound(f"no flag {key!r}")
        return found

    def create(self, definition: Mapping[str, Any]) -> FlagRecord:
        """Create a flag from a definition (see :class:`~tenantry.FlagSpec`); booleans start off."""
        if not isinstance(definition, Mapping):
            raise InvalidInput("a flag definition is a JSON object")
        spec = evaluation.parse_spec(definition)
        actor = self._plane.actor
        with self._plane.admin() as conn, conn.transaction():
            existing = store.read_flag(conn, spec.key, lock=True)
            if existing is not None:
                if existing.spec == spec:
                    return existing
                raise FlagExists(
                    f"flag {spec.key!r} exists already with another definition; change it with `flags set`"
                )
            try:
                created = store.insert_flag(conn, spec, actor=actor)
            except psycopg.errors.UniqueViolation as err:
                raise FlagExists(f"flag {spec.key!r} was created concurrently") from err
            audit.record(
                conn, actor=actor, action="flag.create", target_type="flag", target=spec.key, after=created.to_dict()
            )
            notify_flag(conn, spec.key)
        self._forget()
        return created

    def update(self, key: str, changes: Mapping[str, Any], *, action: str = "flag.update") -> FlagRecord:
        """Change some fields of a flag (``{"rollout": 25}``, ``{"enable_at": None}``, ...); the
        whole new definition is validated before anything is written."""
        evaluation.check_key(key)
        if not isinstance(changes, Mapping):
            raise InvalidInput("flag changes are a JSON object")
        if "key" in changes and changes["key"] != key:
            raise InvalidInput("a flag's key cannot change; create a new flag instead")
        actor = self._plane.actor
        with self._plane.admin() as conn, conn.transaction():
            before = store.read_flag(conn, key, lock=True)
            if before is None:
                raise FlagNotFound(f"no flag {key!r}")
            current = before.spec.to_dict()
            if changes.get("kind", before.spec.kind) != before.spec.kind:
                # the other kind's variants, default and off variant must be given anew
                for name in ("variants", "default", "off", "rules", "rollout"):
                    current.pop(name, None)
            try:
                spec = evaluation.parse_spec({**current, **changes})
            except ConfigInvalid as err:
                raise ConfigInvalid(
                    f"this change to flag {key!r} is invalid: {'; '.join(err.problems)}", err.problems
                ) from None
            if spec == before.spec:
                return before
            after = store.update_flag(conn, spec, actor=actor)
            audit.record(
                conn,
                actor=actor,
                action=action,
                target_type="flag",
                target=key,
                before=before.to_dict(),
                after=after.to_dict(),
            )
            notify_flag(conn, key)
        self._forget()
        return after

    def kill(self, key: str) -> FlagRecord:
        """Kill switch: the flag serves its off variant everywhere until unkilled."""
        return self.update(key, {"killed": True}, action="flag.kill")

    def unkill(self, key: str) -> FlagRecord:
        """Lift the kill switch: the flag serves by its rules again."""
        return self.update(key, {"killed": False}, action="flag.unkill")

    def delete(self, key: str) -> bool:
        """Delete a flag; ``False`` when there was none. Evaluations then find no flag."""
        evaluation.check_key(key)
        actor = self._plane.actor
        with self._plane.admin() as conn, conn.transaction():
            before = store.read_flag(conn, key, lock=True)
            if before is None:
                return False
            store.delete_flag(conn, key)
            audit.record(
                conn, actor=actor, action="flag.delete", target_type="flag", target=key, before=before.to_dict()
            )
            notify_flag(conn, key)
        self._forget()
        return True

    def _forget(self) -> None:
        # this process's cache at once; the NOTIFY sent with the change reaches the others
        self._live.on_event(EventKind.FLAG, "")

    # -- evaluation ---------------------------------------------------------------------------
    def enabled(
        self,
        key: str,
        *,
        user: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> bool:
        """Whether the flag serves ``true``; an unknown flag is off."""
        if user is None and attributes is None and tenant is None:
            # the hot path: a memoised evaluation of a warm view
            bound = context._current.get()
            live = self._live
            flag_set = live.flag_sets.get(ALL_FLAGS)
            if bound is not None and flag_set is not None:
                view = live.views.get(bound.id)
                if view is not None:
                    hit = view.memo.get(key)
                    if hit is not None and hit[0] is flag_set and (hit[2] is None or hit[2] > time()):
                        return hit[1].value is True
        try:
            return self.evaluate(key, user=user, attributes=attributes, tenant=tenant).value is True
        except FlagNotFound:
            return False

    def value(
        self,
        key: str,
        default: Any = None,
        *,
        user: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> Any:
        """The value of the variant the flag serves; ``default`` for an unknown flag."""
        try:
            return self.evaluate(key, user=user, attributes=attributes, tenant=tenant).value
        except FlagNotFound:
            return default

    def evaluate(
        self,
        key: str,
        *,
        user: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> Evaluation:
        """The full evaluation (value, variant, reason, rule) for the bound tenant, or for
        ``tenant`` as its running app sees it; :class:`FlagNotFound` for an unknown flag (a
        key that could not name one included: :func:`~tenantry.tenant_config.evaluation.check_key`
        tells those apart)."""
        live = self._live
        view = live.view(live.tenant_id(tenant))
        memo = view.memo  # read before the flags: an event in between orphans this memo
        flag_set = live.flags()
        flag = flag_set.by_key.get(key)
        if flag is None:
            raise FlagNotFound(f"no flag {key!r}")
        now = time()
        plain = user is None and not attributes
        if plain:
            hit = memo.get(key)
            if hit is not None and hit[0] is flag_set and (hit[2] is None or hit[2] > now):
                return hit[1]
        resolved = view.resolve(now, live.schema())
        values = resolved.attributes
        if not plain:
            extra = {k: v for k, v in (attributes or {}).items() if k not in evaluation.RESERVED_ATTRIBUTES}
            values = {**extra, **values, "user": user}
        result, until = evaluation.evaluate(flag, str(view.id), values, now, user)
        if resolved.until is not None:
            until = resolved.until if until is None else min(until, resolved.until)
        if plain:
            memo[key] = (flag_set, result, until)
        return result

    def evaluate_all(self, *, user: str | None = None, tenant: str | uuid.UUID | None = None) -> dict[str, Evaluation]:
        """Every flag's evaluation for the tenant, by key."""
        keys = sorted(self._live.flags().by_key)
        found = {}
        for key in keys:
            try:
                found[key] = self.evaluate(key, user=user, tenant=tenant)
            except FlagNotFound:  # deleted meanwhile
                continue
        return found
