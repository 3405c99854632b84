"""Configuration layers in the catalog: read, write (validated, versioned, audited), history,
diff and rollback. The CLI and the admin API call these functions.

A layer belongs to a plan or to a tenant. Every write is one transaction that locks the layer,
computes the new document, validates what it would make of every tenant it reaches, appends a
version (author, time, message), records the audit entry and sends ``NOTIFY`` so that every
process drops what it cached. A write that does not validate saves nothing.

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
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tenantry.core import config as core
from tenantry.core import secrets as sealing
from tenantry.core.model import Status
from tenantry.errors import ConfigInvalid, Conflict, InvalidInput, NotFound, TenantNotFound
from tenantry.services import audit
from tenantry.services import tenants as tenant_service
from tenantry.services.events import notify_config

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = [
    "ConfigChange",
    "ConfigDiff",
    "ConfigValue",
    "ConfigVersion",
    "Scope",
    "diff",
    "get",
    "get_version",
    "history",
    "modify",
    "replace",
    "reseal",
    "rollback",
    "scope_of",
    "set_value",
    "set_values",
    "unset_value",
]

ScopeKind = Literal["plan", "tenant"]
_LOCK_NAMESPACE = "tenantry.config.plan:"


@dataclass(frozen=True, slots=True)
class Scope:
    """The layer a call is about: a plan's, or a tenant's."""

    kind: ScopeKind
    target: str
    """The plan's name, or the tenant's slug."""
    plan: str
    """The plan (a tenant's: its plan)."""
    tenant_id: uuid.UUID | None = None

    @property
    def key(self) -> str:
        """How NOTIFY names it: the plan's name or the tenant's id."""
        return self.plan if self.tenant_id is None else str(self.tenant_id)

    @property
    def column(self) -> sql.Identifier:
        """The catalog column that names the layer's owner."""
        return sql.Identifier("tenant_id" if self.kind == "tenant" else "plan")

    @property
    def value(self) -> Any:
        """The owner's value in :attr:`column`."""
        return self.tenant_id if self.kind == "tenant" else self.plan

    @property
    def sealing(self) -> str:
        """What a sealed value of this layer is bound to (a layer's secrets open only there)."""
        return f"plan:{self.plan}" if self.tenant_id is None else f"tenant:{self.tenant_id}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"scope": self.kind, "target": self.target, "plan": self.plan}
        if self.tenant_id is not None:
            data["tenant_id"] = str(self.tenant_id)
        return data


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One version of a layer, as the history keeps it."""

    scope: Scope
    version: int
    document: dict[str, Any]
    overrides: dict[str, Any]
    actor: str | None
    message: str
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scope.to_dict(),
            "version": self.version,
            "document": self.document,
            "overrides": self.overrides,
            "actor": self.actor,
            "message": self.message,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """The outcome of a write: the version now current and what changed (nothing: a no-op)."""

    scope: Scope
    version: int
    changes: list[core.Change]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scope.to_dict(),
            "version": self.version,
            "changed": self.changed,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    scope: Scope
    from_version: int
    to_version: int
    changes: list[core.Change]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scope.to_dict(),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """What a plan or tenant resolves to: the effective config (defaults included), the
    layer's own values and live overrides, and which layer gave the value asked for."""

    scope: Scope
    version: int
    effective: dict[str, Any]
    document: dict[str, Any]
    overrides: dict[str, Any]
    key: str | None = None
    value: Any = None
    source: str | None = None
    """``override``, ``tenant``, ``plan`` or ``default`` (only with ``key``)."""

    def to_dict(self) -> dict[str, Any]:
        data = {
            **self.scope.to_dict(),
            "version": self.version,
            "document": self.document,
            "overrides": self.overrides,
            "effective": self.effective,
        }
        if self.key is not None:
            data.update(key=self.key, value=self.value, source=self.source)
        return data


# -- scopes and reads -----------------------------------------------------------------------


def scope_of(conn: psycopg.Connection[Any], *, tenant: str | uuid.UUID | None = None, plan: str | None = None) -> Scope:
    """The layer of ``tenant`` (slug or id) or of ``plan``: exactly one of them."""
    if (tenant is None) == (plan is None):
        raise InvalidInput("name exactly one layer: a tenant or a plan")
    if tenant is not None:
        found = tenant_service.get_tenant(conn, tenant)
        if found.status is Status.DELETED:
            raise TenantNotFound(f"tenant {found.slug!r} is deleted")
        return Scope("tenant", found.slug, found.plan, found.id)
    assert plan is not None
    return Scope("plan", tenant_service.get_plan(conn, plan).name, plan)


def _layer(
    conn: psycopg.Connection[Any], scope: Scope, *, lock: bool = False
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    row = conn.execute(
        sql.SQL("SELECT version, document, overrides FROM tenantry.config_layers WHERE {} = %s{}").format(
            scope.column, sql.SQL(" FOR UPDATE" if lock else "")
        ),
        (scope.value,),
    ).fetchone()
    return (0, {}, {}) if row is None else (int(row[0]), row[1], row[2])


def _plan_document(conn: psycopg.Connection[Any], plan: str, keyring: sealing.Keyring | None) -> dict[str, Any]:
    row = conn.execute("SELECT document FROM tenantry.config_layers WHERE plan = %s", (plan,)).fetchone()
    return {} if row is None else sealing.unseal(row[0], keyring, f"plan:{plan}")


def _opened(
    layer: tuple[int, dict[str, Any], dict[str, Any]],
    keyring: sealing.Keyring | None,
    scope: Scope,
    *,
    strict: bool = True,
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """A stored layer (version, document, overrides) with its sealed values opened."""
    version, document, overrides = layer
    return (
        version,
        sealing.unseal(document, keyring, scope.sealing, strict=strict),
        sealing.unseal_overrides(overrides, keyring, scope.sealing, strict=strict),
    )


def _redacted_change(change: core.Change, paths: frozenset[sealing.Path]) -> core.Change:
    path = tuple(change.path.split("."))
    if change.layer == "override":
        return change.shown(lambda entry: sealing.redact_overrides({change.path: entry}, paths)[change.path])
    return change.shown(lambda value: sealing.redact({path[-1]: value}, paths, path[:-1])[path[-1]])


def get(
    tn: Tenantry, *, tenant: str | uuid.UUID | None = None, plan: str | None = None, key: str | None = None
) -> ConfigValue:
    """What a tenant (or a plan's tenants without a layer of their own) resolves to now."""
    path = None if key is None else core.parse_path(key)
    schema = tn.config_sections.schema()
    now = core.utcnow()
    keyring = tn.secret_keyring()
    paths = sealing.secret_paths(schema)
    with tn.admin() as conn:
        scope = scope_of(conn, tenant=tenant, plan=plan)
        version, document, overrides = _opened(_layer(conn, scope), keyring, scope)
        plan_doc = document if scope.kind == "plan" else _plan_document(conn, scope.plan, keyring)
    tenant_doc = document if scope.kind == "tenant" else {}
    merged, _until = core.resolve(plan_doc, tenant_doc, overrides, now)
    # SecretStr fields dump as the mask: the effective config is redacted by the schema itself
    effective = core.validate(schema, merged, what=f"{scope.kind} {scope.target}'s config").model_dump(mode="json")
    live = sealing.redact_overrides(core.prune(overrides, now), paths)
    document = sealing.redact(document, paths)
    plan_doc, tenant_doc = sealing.redact(plan_doc, paths), sealing.redact(tenant_doc, paths)
    result = ConfigValue(scope, version, effective, document, live)
    if path is None:
        return result
    try:
        value = core.get_path(effective, path)
    except KeyError:
        raise NotFound(f"the config has no key {key!r}") from None
    return ConfigValue(
        scope,
        version,
        effective,
        document,
        live,
        key=key,
        value=value,
        source=_source(path, plan_doc, tenant_doc, live),
    )


def _source(path: tuple[str, ...], plan_doc: dict[str, Any], tenant_doc: dict[str, Any], live: dict[str, Any]) -> str:
    dotted = ".".join(path)
    if any(dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + ".") for k in live):
        return "override"
    for name, document in (("tenant", tenant_doc), ("plan", plan_doc)):
        try:
            core.get_path(document, path)
        except KeyError:
            continue
        return name
    return "default"


# -- writes ---------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any], dict[str, Any], datetime], tuple[dict[str, Any], dict[str, Any]]]


def set_value(
    tn: Tenantry,
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
    return set_values(
        tn, {key: value}, tenant=tenant, plan=plan, expires_in=expires_in, expires_at=expires_at, message=message
    )


def set_values(
    tn: Tenantry,
    values: Mapping[str, Any],
    *,
    tenant: str | uuid.UUID | None = None,
    plan: str | None = None,
    expires_in: timedelta | None = None,
    expires_at: datetime | None = None,
    message: str = "",
) -> ConfigChange:
    """Set several dotted keys in a layer at once: one version, validated as a whole (all of
    them are saved, or none). With ``expires_in``/``expires_at``, as temporary overrides of a
    tenant's config instead, all ending together::

        set_values(tn, {"limits.max_projects": 50, "welcome": "hi"}, tenant="acme")
    """
    if not isinstance(values, Mapping) or not values:
        raise InvalidInput("name at least one key to set")
    paths = [(core.parse_path(key), value) for key, value in values.items()]
    for key, value in values.items():
        core.check_json(value, f"the value of {key}")
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
                document = core.set_path(document, path, value)
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
    return _write(tn, tenant, plan, mutate, action, message or said[:1000])


def unset_value(
    tn: Tenantry,
    key: str,
    *,
    tenant: str | uuid.UUID | None = None,
    plan: str | None = None,
    override: bool = False,
    message: str = "",
) -> ConfigChange:
    """Remove ``key`` from a layer (the layers below show through again); with ``override``,
    end the tenant's temporary override of ``key`` instead. Absent keys: a no-op."""
    path = core.parse_path(key)

    def mutate(
        document: dict[str, Any], overrides: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if override:
            return document, {k: v for k, v in overrides.items() if k != ".".join(path)}
        return core.unset_path(document, path)[0], overrides

    return _write(tn, tenant, plan, mutate, "config.unset", message or f"unset {key}{' override' if override else ''}")


def replace(
    tn: Tenantry,
    document: dict[str, Any],
    *,
    tenant: str | uuid.UUID | None = None,
    plan: str | None = None,
    message: str = "",
) -> ConfigChange:
    """Replace a layer's values with ``document`` (its overrides stay)."""
    if not isinstance(document, dict):
        raise InvalidInput("a config document is a JSON object")
    core.check_json(document, "the config document")
    return _write(tn, tenant, plan, lambda _d, o, _n: (dict(document), o), "config.replace", message or "replace")


def modify(
    tn: Tenantry,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    tenant: str | uuid.UUID | None = None,
    plan: str | None = None,
    action: str = "config.set",
    message: str = "",
) -> ConfigChange:
    """Apply ``change`` to a layer's values, as one version: it gets the current document with
    its secrets open (inside the write's lock) and returns the new one. For changes that
    depend on a secret, such as a rotation keeping the old value for a while."""
    return _write(tn, tenant, plan, lambda d, o, _n: (change(d), o), action, message or action)


def rollback(
    tn: Tenantry,
    version: int,
    *,
    tenant: str | uuid.UUID | None = None,
    plan: str | None = None,
    message: str = "",
) -> ConfigChange:
    """Make a layer what it was at ``version`` (0: empty), as a new version. Overrides of that
    version that have expired since stay gone."""
    keyring = tn.secret_keyring()
    with tn.admin() as conn:
        scope = scope_of(conn, tenant=tenant, plan=plan)
        old = _version(conn, scope, version)
    _, old_document, old_overrides = _opened((old.version, old.document, old.overrides), keyring, scope)

    def mutate(_d: dict[str, Any], _o: dict[str, Any], now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(old_document), core.prune(old_overrides, now)

    return _write(tn, tenant, plan, mutate, "config.rollback", message or f"rollback to version {version}")


def _write(
    tn: Tenantry,
    tenant: str | uuid.UUID | None,
    plan: str | None,
    mutate: Mutation,
    action: str,
    message: str,
) -> ConfigChange:
    if not isinstance(message, str) or len(message) > 1000:
        raise InvalidInput("a change message is text of at most 1000 characters")
    schema = tn.config_sections.schema()
    paths = sealing.secret_paths(schema)
    keyring = tn.secret_keyring()
    with tn.admin() as conn, conn.transaction():
        scope = _lock(conn, tenant=tenant, plan=plan)
        conn.execute(
            sql.SQL(
                "INSERT INTO tenantry.config_layers ({0}) VALUES (%s) ON CONFLICT ({0}) WHERE {0} IS NOT NULL DO NOTHING"
            ).format(scope.column),
            (scope.value,),
        )
        version, document, overrides = _opened(_layer(conn, scope, lock=True), keyring, scope)
        now = core.utcnow()
        current = (document, core.prune(overrides, now))
        new_document, new_overrides = mutate(*current, now)
        new_document = sealing.keep_redacted(new_document, document, paths)
        core.check_json(new_document, "the config document")
        core.check_json(new_overrides, "the overrides")
        changes = core.diff(current, (new_document, new_overrides))
        if not changes:
            return ConfigChange(scope, version, [])
        _check(conn, schema, scope, new_document, new_overrides, now, keyring)
        stored = (
            sealing.seal(new_document, paths, keyring, scope.sealing),
            sealing.seal_overrides(new_overrides, paths, keyring, scope.sealing),
        )
        version += 1
        conn.execute(
            sql.SQL(
                "UPDATE tenantry.config_layers SET version = %s, document = %s, overrides = %s, updated_at = now() WHERE {} = %s"
            ).format(scope.column),
            (version, Jsonb(stored[0]), Jsonb(stored[1]), scope.value),
        )
        try:
            conn.execute(
                "INSERT INTO tenantry.config_versions (plan, tenant_id, version, document, overrides, actor, message)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    scope.plan if scope.kind == "plan" else None,
                    scope.tenant_id,
                    version,
                    Jsonb(stored[0]),
                    Jsonb(stored[1]),
                    tn.actor,
                    message,
                ),
            )
        except psycopg.errors.UniqueViolation as err:  # the layer lock makes this unreachable
            raise Conflict(
                f"version {version} of {scope.kind} {scope.target}'s config was written concurrently"
            ) from err
        audit.record(
            conn,
            actor=tn.actor,
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
    tn._forget_config(scope.kind, scope.key)
    return ConfigChange(scope, version, [_redacted_change(c, paths) for c in changes])


def _lock(conn: psycopg.Connection[Any], *, tenant: str | uuid.UUID | None, plan: str | None) -> Scope:
    """Resolve the scope and take its locks: the tenant row (so its plan cannot change
    meanwhile) and the plan's advisory lock (shared for a tenant write)."""
    scope = scope_of(conn, tenant=tenant, plan=plan)
    if scope.kind == "tenant":
        row = conn.execute(
            "SELECT plan FROM tenantry.tenants WHERE id = %s AND status <> 'deleted' FOR SHARE", (scope.tenant_id,)
        ).fetchone()
        if row is None:
            raise TenantNotFound(f"tenant {scope.target!r} is deleted")
        scope = Scope("tenant", scope.target, row[0], scope.tenant_id)
        conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (_LOCK_NAMESPACE + scope.plan,))
    else:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_NAMESPACE + scope.plan,))
    return scope


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
        _check_tenant(schema, scope.target, _plan_document(conn, scope.plan, keyring), document, overrides, now)
        return
    core.validate(schema, document, what=f"plan {scope.target}'s config")
    rows = conn.execute(
        """
        SELECT t.slug, t.id, l.document, l.overrides
          FROM tenantry.config_layers l JOIN tenantry.tenants t ON t.id = l.tenant_id
         WHERE t.plan = %s AND t.status <> 'deleted'
         ORDER BY t.slug
        """,
        (scope.plan,),
    ).fetchall()
    for slug, tenant_id, tenant_doc, tenant_overrides in rows:
        _, tenant_doc, tenant_overrides = _opened(
            (0, tenant_doc, tenant_overrides), keyring, Scope("tenant", slug, scope.plan, tenant_id)
        )
        _check_tenant(schema, slug, document, tenant_doc, core.prune(tenant_overrides, now), now, via_plan=scope.plan)


def _check_tenant(
    schema: type[Any],
    slug: str,
    plan_doc: dict[str, Any],
    document: dict[str, Any],
    overrides: dict[str, Any],
    now: datetime,
    via_plan: str | None = None,
) -> None:
    for moment in core.moments(overrides, now):
        merged = core.merge(plan_doc, document)
        for path, value in core.active_overrides(overrides, moment)[0]:
            merged = core.set_path(merged, path, value)
        when = "" if moment == now else f" once overrides expire at {moment.isoformat()}"
        try:
            core.validate(schema, merged, what=f"tenant {slug}'s config{when}")
        except ConfigInvalid as err:
            if via_plan is None:
                raise
            raise ConfigInvalid(
                f"this change to plan {via_plan} would make {err.message}",
                [f"tenant {slug}: {p}" for p in err.problems],
            ) from None


# -- history --------------------------------------------------------------------------------


def _version(conn: psycopg.Connection[Any], scope: Scope, version: int) -> ConfigVersion:
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidInput(f"version {version!r} must be a whole number >= 0")
    if version == 0:
        return ConfigVersion(scope, 0, {}, {}, None, "empty", None)
    row = conn.execute(
        sql.SQL(
            "SELECT version, document, overrides, actor, message, created_at FROM tenantry.config_versions"
            " WHERE {} = %s AND version = %s"
        ).format(scope.column),
        (scope.value, version),
    ).fetchone()
    if row is None:
        latest = _layer(conn, scope)[0]
        raise NotFound(
            f"{scope.kind} {scope.target}'s config has no version {version}"
            f" ({'versions 1 to ' + str(latest) if latest else 'no versions yet'})"
        )
    return ConfigVersion(scope, *row)


def _shown(tn: Tenantry, found: ConfigVersion) -> ConfigVersion:
    """A version as reads show it: secrets redacted."""
    paths = _secret_paths(tn)
    return dataclasses.replace(
        found,
        document=sealing.redact(found.document, paths),
        overrides=sealing.redact_overrides(found.overrides, paths),
    )


def _secret_paths(tn: Tenantry) -> frozenset[sealing.Path]:
    # with no schema, only what is sealed is redacted (redact() masks every sealed value)
    return sealing.secret_paths(tn.config_sections.schema()) if tn.config_sections.configured else frozenset()


def get_version(
    tn: Tenantry, version: int, *, tenant: str | uuid.UUID | None = None, plan: str | None = None
) -> ConfigVersion:
    """One version of a layer (secrets redacted)."""
    with tn.admin() as conn:
        return _shown(tn, _version(conn, scope_of(conn, tenant=tenant, plan=plan), version))


def history(
    tn: Tenantry,
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
    with tn.admin() as conn:
        scope = scope_of(conn, tenant=tenant, plan=plan)
        rows = conn.execute(
            sql.SQL(
                "SELECT version, document, overrides, actor, message, created_at FROM tenantry.config_versions"
                " WHERE {} = %s AND (%s::bigint IS NULL OR version < %s) ORDER BY version DESC LIMIT %s"
            ).format(scope.column),
            (scope.value, before, before, limit),
        ).fetchall()
    return [_shown(tn, ConfigVersion(scope, *row)) for row in rows]


def diff(
    tn: Tenantry, from_version: int, to_version: int, *, tenant: str | uuid.UUID | None = None, plan: str | None = None
) -> ConfigDiff:
    """What changed in a layer between two versions (0: empty); a secret that changed shows
    as changed, redacted on both sides."""
    keyring = tn.secret_keyring()
    with tn.admin() as conn:
        scope = scope_of(conn, tenant=tenant, plan=plan)
        a, b = _version(conn, scope, from_version), _version(conn, scope, to_version)
    _, a_doc, a_over = _opened((a.version, a.document, a.overrides), keyring, scope, strict=False)
    _, b_doc, b_over = _opened((b.version, b.document, b.overrides), keyring, scope, strict=False)
    paths = _secret_paths(tn)
    changes = [_redacted_change(c, paths) for c in core.diff((a_doc, a_over), (b_doc, b_over))]
    return ConfigDiff(scope, from_version, to_version, changes)


def reseal(tn: Tenantry) -> int:
    """Seal every secret value of the current layers with the first key of the keyring (after
    a key rotation); the values do not change, so no version is added. Versions in the history
    stay as they were written (it is append-only): keep an old key while a version sealed with
    it may be rolled back to. Returns how many layers were rewritten (audited as
    ``config.reseal``)."""
    keyring = tn.secret_keyring()
    if keyring is None:
        return 0
    rewritten = 0
    with tn.admin() as conn, conn.transaction():
        rows = conn.execute(
            "SELECT plan, tenant_id, document, overrides FROM tenantry.config_layers ORDER BY plan, tenant_id FOR UPDATE"
        ).fetchall()
        for plan, tenant_id, document, overrides in rows:
            if _reseal(keyring, document) == document and _reseal(keyring, overrides) == overrides:
                continue
            where = f"plan:{plan}" if tenant_id is None else f"tenant:{tenant_id}"
            paths = frozenset(_sealed_paths(document))
            over_paths = frozenset(
                p for k, e in overrides.items() for p in _sealed_paths(e.get("value"), tuple(k.split(".")))
            )
            conn.execute(
                "UPDATE tenantry.config_layers SET document = %s, overrides = %s"
                " WHERE plan IS NOT DISTINCT FROM %s AND tenant_id IS NOT DISTINCT FROM %s",
                (
                    Jsonb(sealing.seal(sealing.unseal(document, keyring, where), paths, keyring, where)),
                    Jsonb(
                        sealing.seal_overrides(
                            sealing.unseal_overrides(overrides, keyring, where), over_paths, keyring, where
                        )
                    ),
                    plan,
                    tenant_id,
                ),
            )
            rewritten += 1
        if rewritten:
            audit.record(
                conn,
                actor=tn.actor,
                action="config.reseal",
                target_type="config",
                target="*",
                after={"layers": rewritten, "key": keyring.current},
            )
    return rewritten


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
