"""``tn.config``: per-tenant config in layers: read, write (validated, versioned, audited),
history, diff and rollback; and, for the tenant bound to the context, the typed config object.

A layer belongs to a plan or to a tenant. Every write is one transaction that locks the layer,
computes the new document, validates what it would make of every tenant it reaches, appends a
version (author, time, message), records the audit entry and sends ``NOTIFY``; this process's
cache forgets the layer at once, the others within a second. A write that does not validate
saves nothing.

What is validated:

* a tenant write: the tenant's merged document (schema defaults, plan, tenant, overrides) now
  and at each later moment one of its overrides expires;
* a plan write: the plan's own merged document, and that of every tenant on the plan that has
  a layer of its own (tenants without one resolve to the plan's). The error names the tenant.

Secret fields (typed ``SecretStr`` in the schema, see :mod:`tenantry.core.secrets`) are stored
sealed, in the layer and in every version, and every read here shows them redacted: values,
effective config, history, diffs, the changes a write reports and the audit entry's before
and after. A redacted value written back (a document read, edited and replaced) keeps the
secret it stands for.

Tenant writes hold the plan's advisory lock in shared mode and plan writes hold it alone, so a
plan write and a tenant write on that plan are judged one after the other. Temporary overrides
belong to tenants. Writing what is already there is a no-op: no version, no audit entry.

>>> tn.config.set("limits.max_projects", 50, tenant="acme").version
1
>>> with tn.tenant("acme"):
...     tn.config.current(AppConfig).limits.max_projects
50
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

import psycopg
from pydantic import BaseModel

from tenantry import context
from tenantry.core import secrets as sealing
from tenantry.core.events import EventKind
from tenantry.db.catalog import audit
from tenantry.db.catalog import config as store
from tenantry.db.catalog.events import notify_config
from tenantry.db.catalog.scopes import Scope
from tenantry.errors import Conflict, InvalidInput, NotFound
from tenantry.tenant_config import layers
from tenantry.tenant_config.live import Live
from tenantry.tenant_config.plane import ControlPlane
from tenantry.tenant_config.results import ConfigChange, ConfigDiff, ConfigValue, ConfigVersion
from tenantry.tenant_config.schema import ConfigSections, check_tenant, validate

__all__ = ["ConfigChange", "ConfigDiff", "ConfigValue", "ConfigVersion", "Scope", "TenantConfig"]

_Model = TypeVar("_Model", bound=BaseModel)

Mutation = Callable[[dict[str, Any], dict[str, Any], datetime], tuple[dict[str, Any], dict[str, Any]]]
"""A write's change: (document, live overrides, now) -> the new (document, overrides)."""


class TenantConfig:
    """Per-tenant config of one :class:`~tenantry.Tenantry` (use ``tn.config``).

    Control-plane calls name one layer, ``tenant=`` (slug or id) or ``plan=``, and read or
    write the catalog. :meth:`current` reads the bound tenant's config from the process's
    cache. The schema is the app's pydantic model and the sections plugins add
    (:attr:`sections`).
    """

    def __init__(self, plane: ControlPlane, live: Live) -> None:
        self._plane = plane
        self._live = live

    # -- the schema ---------------------------------------------------------------------------
    @property
    def sections(self) -> ConfigSections:
        """The config schema: the app's model and the sections plugins add."""
        return self._live.sections

    def configure(self, model: type[BaseModel]) -> None:
        """Set the app's config schema (a pydantic model) after construction."""
        self._live.sections.configure(model)

    # -- the bound tenant ---------------------------------------------------------------------
    @overload
    def current(self) -> BaseModel: ...
    @overload
    def current(self, as_type: type[_Model]) -> _Model: ...
    def current(self, as_type: type[BaseModel] | None = None) -> BaseModel:
        """The bound tenant's config, typed by the app's schema::

            with tn.tenant("acme"):
                limit = tn.config.current(AppConfig).limits.max_projects

        Layers resolve as schema defaults, then the plan's values, the tenant's, and its live
        temporary overrides. Read from the process's cache: no database round trip once warm.
        The object is frozen; it is shared by every reader of the same tenant.
        """
        return self._live.config(context.require().id, as_type)

    # -- reads --------------------------------------------------------------------------------
    def get(
        self, *, tenant: str | uuid.UUID | None = None, plan: str | None = None, key: str | None = None
    ) -> ConfigValue:
        """What a tenant (or a plan's tenants without a layer of their own) resolves to now,
        read from the catalog; with ``key`` (dotted), that value and the layer it comes from."""
        path = None if key is None else layers.parse_path(key)
        schema = self.sections.schema()
        now = layers.utcnow()
        keyring = self._plane.secret_keyring()
        paths = sealing.secret_paths(schema)
        with self._plane.admin() as conn:
            scope = store.scope_of(conn, tenant=tenant, plan=plan)
            version, document, overrides = _opened(store.read_layer(conn, scope), keyring, scope)
            plan_doc = document if scope.kind == "plan" else _plan_document(conn, scope.plan, keyring)
        tenant_doc = document if scope.kind == "tenant" else {}
        merged, _until = layers.resolve(plan_doc, tenant_doc, overrides, now)
        # SecretStr fields dump as the mask: the effective config is redacted by the schema itself
        effective = validate(schema, merged, what=f"{scope.kind} {scope.target}'s config").model_dump(mode="json")
        live = sealing.redact_overrides(layers.prune(overrides, now), paths)
        document = sealing.redact(document, paths)
        plan_doc, tenant_doc = sealing.redact(plan_doc, paths), sealing.redact(tenant_doc, paths)
        result = ConfigValue(scope, version, effective, document, live)
        if path is None:
            return result
        try:
            value = layers.get_path(effective, path)
        except KeyError:
            raise NotFound(f"the config has no key {key!r}") from None
        source = _source(path, plan_doc, tenant_doc, live)
        return ConfigValue(scope, version, effective, document, live, key=key, value=value, source=source)

    def version(self, version: int, *, tenant: str | uuid.UUID | None = None, plan: str | None = None) -> ConfigVersion:
        """One version of a layer (0: empty), secrets redacted."""
        with self._plane.admin() as conn:
            scope = store.scope_of(conn, tenant=tenant, plan=plan)
            return self._shown(scope, store.read_version(conn, scope, version))

    def history(
        self,
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[ConfigVersion]:
        """A layer's versions, newest first; ``before``: only versions older than that one (the
        previous page's last)."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000")
        with self._plane.admin() as conn:
            scope = store.scope_of(conn, tenant=tenant, plan=plan)
            rows = store.read_history(conn, scope, limit=limit, before=before)
        return [self._shown(scope, row) for row in rows]

    def diff(
        self,
        from_version: int,
        to_version: int,
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
    ) -> ConfigDiff:
        """What changed in a layer between two versions (0: empty); a secret that changed shows
        as changed, redacted on both sides."""
        keyring = self._plane.secret_keyring()
        with self._plane.admin() as conn:
            scope = store.scope_of(conn, tenant=tenant, plan=plan)
            a, b = store.read_version(conn, scope, from_version), store.read_version(conn, scope, to_version)
        _, a_doc, a_over = _opened((a.version, a.document, a.overrides), keyring, scope, strict=False)
        _, b_doc, b_over = _opened((b.version, b.document, b.overrides), keyring, scope, strict=False)
        paths = self._secret_paths()
        changes = [_redacted_change(c, paths) for c in layers.diff((a_doc, a_over), (b_doc, b_over))]
        return ConfigDiff(scope, from_version, to_version, changes)

    def _shown(self, scope: Scope, found: store.StoredVersion) -> ConfigVersion:
        """A version as reads show it: secrets redacted."""
        paths = self._secret_paths()
        return ConfigVersion(
            scope,
            found.version,
            sealing.redact(found.document, paths),
            sealing.redact_overrides(found.overrides, paths),
            found.actor,
            found.message,
            found.created_at,
        )

    def _secret_paths(self) -> frozenset[sealing.Path]:
        # with no schema, only what is sealed is redacted (redact() masks every sealed value)
        sections = self.sections
        return sealing.secret_paths(sections.schema()) if sections.configured else frozenset()

    # -- writes -------------------------------------------------------------------------------
    def set(
        self,
        key: str,
        value: Any,
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        expires_in: timedelta | None = None,
        expires_at: datetime | None = None,
        message: str = "",
    ) -> ConfigChange:
        """Set ``key`` (dotted) in a layer; with ``expires_in``/``expires_at``, as a temporary
        override of a tenant's config instead."""
        return self.set_many(
            {key: value}, tenant=tenant, plan=plan, expires_in=expires_in, expires_at=expires_at, message=message
        )

    def set_many(
        self,
        values: Mapping[str, Any],
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        expires_in: timedelta | None = None,
        expires_at: datetime | None = None,
        message: str = "",
    ) -> ConfigChange:
        """Set several dotted keys in a layer at once: one version, validated as a whole (all
        of them are saved, or none). With ``expires_in``/``expires_at``, as temporary overrides
        of a tenant's config instead, all ending together::

            tn.config.set_many({"limits.max_projects": 50, "welcome": "hi"}, tenant="acme")
        """
        if not isinstance(values, Mapping) or not values:
            raise InvalidInput("name at least one key to set")
        paths = [(layers.parse_path(key), value) for key, value in values.items()]
        for key, value in values.items():
            layers.check_json(value, f"the value of {key}")
        temporary = expires_in is not None or expires_at is not None
        if temporary and tenant is None:
            raise InvalidInput("temporary overrides (--expires) belong to a tenant, not a plan")
        if expires_in is not None and expires_at is not None:
            raise InvalidInput("give expires_in or expires_at, not both")

        def mutate(
            document: dict[str, Any], overrides: dict[str, Any], now: datetime
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            if not temporary:
                for path, value in paths:
                    document = layers.set_path(document, path, value)
                return document, overrides
            until = now + expires_in if expires_in is not None else expires_at
            assert until is not None
            if until.tzinfo is None:
                raise InvalidInput("expires_at must carry a time zone")
            if until <= now:
                raise InvalidInput(f"the override would expire at {until.isoformat()}, which has passed")
            added = {".".join(path): {"value": value, "expires_at": until.isoformat()} for path, value in paths}
            return document, {**overrides, **added}

        action = "config.override" if temporary else "config.set"
        said = f"{'override' if temporary else 'set'} {', '.join(values)}"
        return self._write(tenant, plan, mutate, action, message or said[:1000])

    def unset(
        self,
        key: str,
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        override: bool = False,
        message: str = "",
    ) -> ConfigChange:
        """Remove ``key`` from a layer (the layers below show through again); with ``override``,
        end the tenant's temporary override of ``key`` instead. Absent keys: a no-op."""
        path = layers.parse_path(key)

        def mutate(
            document: dict[str, Any], overrides: dict[str, Any], now: datetime
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            if override:
                return document, {k: v for k, v in overrides.items() if k != ".".join(path)}
            return layers.unset_path(document, path)[0], overrides

        said = f"unset {key}{' override' if override else ''}"
        return self._write(tenant, plan, mutate, "config.unset", message or said)

    def replace(
        self,
        document: dict[str, Any],
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        message: str = "",
    ) -> ConfigChange:
        """Replace a layer's values with ``document`` (its overrides stay)."""
        if not isinstance(document, dict):
            raise InvalidInput("a config document is a JSON object")
        layers.check_json(document, "the config document")
        return self._write(tenant, plan, lambda _d, o, _n: (dict(document), o), "config.replace", message or "replace")

    def modify(
        self,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        action: str = "config.set",
        message: str = "",
    ) -> ConfigChange:
        """Apply ``change`` to a layer's values, as one version: it gets the current document
        with its secrets open (inside the write's lock) and returns the new one. For changes
        that depend on a secret, such as a rotation keeping the old value for a while."""
        return self._write(tenant, plan, lambda d, o, _n: (change(d), o), action, message or action)

    def rollback(
        self,
        version: int,
        *,
        tenant: str | uuid.UUID | None = None,
        plan: str | None = None,
        message: str = "",
    ) -> ConfigChange:
        """Make a layer what it was at ``version`` (0: empty), as a new version. Overrides of that
        version that have expired since stay gone."""
        keyring = self._plane.secret_keyring()
        with self._plane.admin() as conn:
            scope = store.scope_of(conn, tenant=tenant, plan=plan)
            old = store.read_version(conn, scope, version)
        _, old_document, old_overrides = _opened((old.version, old.document, old.overrides), keyring, scope)

        def mutate(_d: dict[str, Any], _o: dict[str, Any], now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
            return dict(old_document), layers.prune(old_overrides, now)

        return self._write(tenant, plan, mutate, "config.rollback", message or f"rollback to version {version}")

    def _write(
        self,
        tenant: str | uuid.UUID | None,
        plan: str | None,
        mutate: Mutation,
        action: str,
        message: str,
    ) -> ConfigChange:
        if not isinstance(message, str) or len(message) > 1000:
            raise InvalidInput("a change message is text of at most 1000 characters")
        schema = self.sections.schema()
        paths = sealing.secret_paths(schema)
        keyring = self._plane.secret_keyring()
        actor = self._plane.actor
        with self._plane.admin() as conn, conn.transaction():
            scope = store.lock_scope(conn, tenant=tenant, plan=plan)
            store.ensure_layer(conn, scope)
            version, document, overrides = _opened(store.read_layer(conn, scope, lock=True), keyring, scope)
            now = layers.utcnow()
            current = (document, layers.prune(overrides, now))
            new_document, new_overrides = mutate(*current, now)
            new_document = sealing.keep_redacted(new_document, document, paths)
            layers.check_json(new_document, "the config document")
            layers.check_json(new_overrides, "the overrides")
            changes = layers.diff(current, (new_document, new_overrides))
            if not changes:
                return ConfigChange(scope, version, [])
            _check(conn, schema, scope, new_document, new_overrides, now, keyring)
            sealed = sealing.seal(new_document, paths, keyring, scope.sealing)
            sealed_overrides = sealing.seal_overrides(new_overrides, paths, keyring, scope.sealing)
            version += 1
            store.write_layer(conn, scope, version, sealed, sealed_overrides)
            try:
                store.append_version(conn, scope, version, sealed, sealed_overrides, actor=actor, message=message)
            except psycopg.errors.UniqueViolation as err:  # the layer lock makes this unreachable
                raise Conflict(
                    f"version {version} of {scope.kind} {scope.target}'s config was written concurrently"
                ) from err
            audit.record(
                conn,
                actor=actor,
                action=action,
                target_type=scope.kind,
                target=scope.target,
                before={
                    "version": version - 1,
                    "document": sealing.redact(current[0], paths),
                    "overrides": sealing.redact_overrides(current[1], paths),
                },
                after={
                    "version": version,
                    "document": sealing.redact(new_document, paths),
                    "overrides": sealing.redact_overrides(new_overrides, paths),
                    "message": message,
                },
            )
            notify_config(conn, scope.kind, scope.key)
        # this process's cache at once; the NOTIFY sent with the change reaches the others
        self._live.on_event(EventKind.CONFIG, f"{scope.kind}:{scope.key}")
        return ConfigChange(scope, version, [_redacted_change(c, paths) for c in changes])

    # -- keys ---------------------------------------------------------------------------------
    def reseal(self) -> int:
        """Seal every secret value of the current layers with the first key of the keyring
        (after a key rotation); the values do not change, so no version is added. Versions in
        the history stay as they were written (it is append-only): keep an old key while a
        version sealed with it may be rolled back to. Returns how many layers were rewritten
        (audited as ``config.reseal``)."""
        keyring = self._plane.secret_keyring()
        if keyring is None:
            return 0
        rewritten = 0
        with self._plane.admin() as conn, conn.transaction():
            for plan, tenant_id, document, overrides in store.layers_for_reseal(conn):
                if _reseal(keyring, document) == document and _reseal(keyring, overrides) == overrides:
                    continue
                where = f"plan:{plan}" if tenant_id is None else f"tenant:{tenant_id}"
                paths = frozenset(_sealed_paths(document))
                over_paths = frozenset(
                    p for k, e in overrides.items() for p in _sealed_paths(e.get("value"), tuple(k.split(".")))
                )
                store.rewrite_sealed(
                    conn,
                    plan,
                    tenant_id,
                    sealing.seal(sealing.unseal(document, keyring, where), paths, keyring, where),
                    sealing.seal_overrides(
                        sealing.unseal_overrides(overrides, keyring, where), over_paths, keyring, where
                    ),
                )
                rewritten += 1
            if rewritten:
                audit.record(
                    conn,
                    actor=self._plane.actor,
                    action="config.reseal",
                    target_type="config",
                    target="*",
                    after={"layers": rewritten, "key": keyring.current},
                )
        return rewritten


# -- sealing and validation -----------------------------------------------------------------


def _plan_document(conn: psycopg.Connection[Any], plan: str, keyring: sealing.Keyring | None) -> dict[str, Any]:
    return sealing.unseal(store.read_plan_document(conn, plan), keyring, f"plan:{plan}")


def _opened(layer: store.Layer, keyring: sealing.Keyring | None, scope: Scope, *, strict: bool = True) -> store.Layer:
    """A stored layer (version, document, overrides) with its sealed values opened."""
    version, document, overrides = layer
    return (
        version,
        sealing.unseal(document, keyring, scope.sealing, strict=strict),
        sealing.unseal_overrides(overrides, keyring, scope.sealing, strict=strict),
    )


def _redacted_change(change: layers.Change, paths: frozenset[sealing.Path]) -> layers.Change:
    path = tuple(change.path.split("."))
    if change.layer == "override":
        return change.shown(lambda entry: sealing.redact_overrides({change.path: entry}, paths)[change.path])
    return change.shown(lambda value: sealing.redact({path[-1]: value}, paths, path[:-1])[path[-1]])


def _source(path: tuple[str, ...], plan_doc: dict[str, Any], tenant_doc: dict[str, Any], live: dict[str, Any]) -> str:
    dotted = ".".join(path)
    if any(dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + ".") for k in live):
        return "override"
    for name, document in (("tenant", tenant_doc), ("plan", plan_doc)):
        try:
            layers.get_path(document, path)
        except KeyError:
            continue
        return name
    return "default"


def _check(
    conn: psycopg.Connection[Any],
    schema: type[Any],
    scope: Scope,
    document: dict[str, Any],
    overrides: dict[str, Any],
    now: datetime,
    keyring: sealing.Keyring | None,
) -> None:
    if scope.kind == "tenant":
        check_tenant(schema, scope.target, _plan_document(conn, scope.plan, keyring), document, overrides, now)
        return
    validate(schema, document, what=f"plan {scope.target}'s config")
    for slug, tenant_id, tenant_doc, tenant_overrides in store.tenant_layers_of_plan(conn, scope.plan):
        _, tenant_doc, tenant_overrides = _opened(
            (0, tenant_doc, tenant_overrides), keyring, Scope("tenant", slug, scope.plan, tenant_id)
        )
        check_tenant(schema, slug, document, tenant_doc, layers.prune(tenant_overrides, now), now, via_plan=scope.plan)


def _reseal(keyring: sealing.Keyring, value: Any) -> Any:
    """``value`` unchanged when everything sealed in it is sealed with the current key, else a marker."""
    if isinstance(value, dict):
        return {k: _reseal(keyring, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reseal(keyring, v) for v in value]
    if sealing.is_sealed(value) and not keyring.sealed_with_current(value):
        return None
    return value


def _sealed_paths(value: Any, prefix: sealing.Path = ()) -> list[sealing.Path]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _sealed_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for v in value for p in _sealed_paths(v, (*prefix, "[]"))]
    return [prefix] if sealing.is_sealed(value) else []
