"""The one exception tree of tenantry.

Every error knows the exit code the CLI uses for it and the HTTP status the admin API and the
web edge answer with, so the interfaces translate errors without a table of their own. Errors
that pass by themselves also know how soon to retry (``retry_after``, seconds; sent as
``Retry-After``)::

    TenantryError                      exit 1, HTTP 500
    ├── ConfigurationError             exit 2, HTTP 500   settings or environment are wrong
    │   └── ControlPlaneOnly           a data-plane process (runtime and reader URLs) asked for admin work
    ├── DatabaseUnavailable            exit 3, HTTP 503   cannot reach or start PostgreSQL (retry)
    ├── CatalogNotInitialised          exit 4, HTTP 503   run `tenantry init` first
    ├── UnsafeRuntimeRole              exit 5, HTTP 500   runtime role could bypass RLS
    ├── InvalidInput                   exit 2, HTTP 422   bad slug, name, plan, option
    │   ├── InvalidSlug
    │   ├── ConfigInvalid              a config value or flag definition fails validation
    │   ├── InvalidBrand               a theme, image or e-mail template refused; nothing saved
    │   │   └── LowContrast            new colours below WCAG AA contrast (allow_low_contrast to keep them)
    │   ├── InvalidHostname            not a hostname a tenant can add as its domain
    │   ├── InvalidSecret              a secret of the wrong form (webhook secrets: whsec_ + base64)
    │   ├── UnsafeAddress              a tenant's host resolves to an address that is not public
    │   └── BackupInvalid              a backup archive refused: corrupted, truncated, wrong key, another app's
    ├── NotFound                       exit 6, HTTP 404
    │   ├── TenantNotFound
    │   ├── PlanNotFound
    │   ├── FlagNotFound
    │   ├── DomainNotFound
    │   ├── PluginNotFound             no plugin of that name is registered or installed
    │   └── BackupNotFound             no backup has that id (or its archive is gone)
    ├── Conflict                       exit 7, HTTP 409
    │   ├── TenantExists
    │   ├── PlanExists                 a plan with that name exists already
    │   ├── PlanInUse                  a plan that tenants are still on (or config names) cannot go
    │   ├── FlagExists                 a flag with that key exists with another definition
    │   ├── InvalidTransition          a status change the lifecycle forbids
    │   ├── TenantMoving      HTTP 503 writes refused for a moment: the tenant is moving (retry)
    │   │   └── TenantMoved   HTTP 503 a binding made before the tenant moved: bind it again (retry)
    │   ├── TenantRestoring   HTTP 503 the tenant is being restored from a backup (retry)
    │   ├── DomainTaken                the hostname belongs to another tenant
    │   └── TablesDiffer               a placement holds tables or columns this process would not carry
    ├── TenantNotActive                exit 8, HTTP 403   suspended/archived tenant asked to serve
    │   └── TenantSuspended            a binding made before the tenant was suspended (archived, deleted)
    ├── IsolationError                 exit 9, HTTP 403   PostgreSQL refused a cross-tenant act
    │   ├── NoTenantBound              a write (or a tenant-scoped call) with no tenant bound
    │   └── TenantContextError         the bound tenant changed inside a transaction
    ├── AuthenticationFailed           exit 11, HTTP 401  API token missing, unknown, expired or revoked
    ├── PermissionDenied               exit 12, HTTP 403  the API token lacks the scope an action needs
    ├── VerificationFailed             exit 13, HTTP 422  a domain did not prove ownership (yet)
    ├── LimitExceeded                  exit 14, HTTP 429  a tenant is over one of its plan's limits (retry)
    │   ├── RateLimited                more requests per second than the plan allows
    │   ├── ConcurrencyLimited         more requests in flight at once than the plan allows
    │   ├── TooManyConnections         more connections held at once than the plan allows (db_connections)
    │   ├── StatementTimeout  HTTP 503 a statement ran longer than the plan allows: cancelled
    │   ├── IdleInTransactionTimeout   HTTP 503 a transaction sat idle longer than the plan allows
    │   └── StorageQuotaExceeded  HTTP 507 the tenant is over its storage_mb: writes refused, reads go on
    └── Overloaded                     exit 15, HTTP 503  the process is at its cap of requests in flight,
                                                          or cannot reach the limits' store (retry)

Driver errors are wrapped and chained (``raise TenantNotFound(...) from err``), never swallowed.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "AuthenticationFailed",
    "BackupInvalid",
    "BackupNotFound",
    "CatalogNotInitialised",
    "ConfigInvalid",
    "ConcurrencyLimited",
    "ConfigurationError",
    "Conflict",
    "ControlPlaneOnly",
    "DatabaseUnavailable",
    "DomainNotFound",
    "DomainTaken",
    "FlagExists",
    "FlagNotFound",
    "InvalidBrand",
    "InvalidHostname",
    "InvalidInput",
    "InvalidSecret",
    "InvalidSlug",
    "InvalidTransition",
    "IsolationError",
    "LimitExceeded",
    "LowContrast",
    "MigrationFailed",
    "NoTenantBound",
    "NotFound",
    "IdleInTransactionTimeout",
    "Overloaded",
    "PermissionDenied",
    "PlanExists",
    "PlanInUse",
    "PlanNotFound",
    "PluginNotFound",
    "RateLimited",
    "StatementTimeout",
    "StorageQuotaExceeded",
    "TablesDiffer",
    "TenantContextError",
    "TenantExists",
    "TenantMoved",
    "TenantMoving",
    "TenantNotActive",
    "TenantNotFound",
    "TenantRestoring",
    "TenantSuspended",
    "TenantryError",
    "TooManyConnections",
    "UnsafeAddress",
    "UnsafeRuntimeRole",
    "VerificationFailed",
]


class TenantryError(Exception):
    """Base of every error tenantry raises on purpose."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    #: seconds after which a retry may succeed, for errors that pass by themselves; ``None``
    #: for errors a retry does not cure
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def code(self) -> str:
        """The error's name for scripts (the CLI's ``--json`` errors), as the admin API's
        problem types end: ``TenantNotFound`` -> ``tenant-not-found``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "-", type(self).__name__).lower()


class ConfigurationError(TenantryError):
    """Settings or the environment are inconsistent."""

    exit_code = 2


class ControlPlaneOnly(ConfigurationError):
    """A process given data-plane credentials only (``TENANTRY_RUNTIME_URL`` and
    ``TENANTRY_READER_URL``, no ``TENANTRY_DATABASE_URL``) was asked for control-plane work:
    creating or changing tenants, migrations, moves, checks. Run it from the CLI, the admin API
    or a worker, which hold the admin connection."""


class DatabaseUnavailable(TenantryError):
    """PostgreSQL cannot be reached, or the embedded server cannot start."""

    exit_code = 3
    http_status = 503
    retry_after = 1


class CatalogNotInitialised(TenantryError):
    """The catalog schema is missing or behind; run ``tenantry init``."""

    exit_code = 4
    http_status = 503


class UnsafeRuntimeRole(TenantryError):
    """The role serving tenant traffic is a superuser, has BYPASSRLS, or owns tenant tables."""

    exit_code = 5


class InvalidInput(TenantryError):
    """A value given by the caller is not acceptable."""

    exit_code = 2
    http_status = 422


class InvalidSlug(InvalidInput):
    """A tenant slug is not a DNS label, or is reserved."""


class InvalidBrand(InvalidInput):
    """A brand change was refused (a colour, font, name, image or e-mail template); the
    message names the field. Nothing of the change was saved."""


class LowContrast(InvalidBrand):
    """A brand change would leave text that is hard to read: colours whose contrast is below
    WCAG AA's 4.5:1. Nothing was saved; the override (``allow_low_contrast``, the CLI's
    ``--allow-low-contrast``) saves such colours anyway.

    ``problems`` holds one line per pair of colours that fails, e.g.
    ``"text on the primary colour: on_primary #ffffff on primary #ffff00, 1.07:1"``; ``hint``
    says how to override, in the words of the interface that raised it.
    """

    def __init__(self, summary: str, problems: list[str] | None = None, *, hint: str = "") -> None:
        super().__init__(f"{summary}; {hint}" if hint else summary)
        self.summary = summary
        self.problems = list(problems or [])
        self.hint = hint

    def with_hint(self, hint: str) -> LowContrast:
        """The same refusal, saying how to override it in other words (an interface's own)."""
        return LowContrast(self.summary, self.problems, hint=hint)


class ConfigInvalid(InvalidInput):
    """A config value or a flag definition does not validate; nothing was saved.

    ``problems`` holds one ``"path: message"`` line per problem, e.g.
    ``"limits.max_projects: Input should be a valid integer"``.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class InvalidHostname(InvalidInput):
    """A hostname is malformed, an IP address, a wildcard, or under the app's base domain."""


class InvalidSecret(InvalidInput):
    """A secret is not of the form it must have (a webhook secret: ``whsec_`` and the base64
    of 24 to 64 random bytes); the message says which form."""


class UnsafeAddress(InvalidInput):
    """A request to a host that a tenant chose was refused: it does not resolve (in time), or
    resolves to an address that is not public (loopback, private, link-local, CGNAT,
    multicast, or an IPv6 form of one of those). See :mod:`tenantry.services.egress`."""


class BackupInvalid(InvalidInput):
    """A backup archive was refused before anything changed: corrupted (a checksum or an
    authentication tag does not match), truncated, sealed with a key that is not configured,
    missing a table's data, made by another app, or from a newer migration head."""


class NotFound(TenantryError):
    exit_code = 6
    http_status = 404


class TenantNotFound(NotFound):
    """No tenant has that slug or id."""


class PlanNotFound(NotFound):
    """No plan has that name."""


class FlagNotFound(NotFound):
    """No feature flag has that key."""


class DomainNotFound(NotFound):
    """No domain with that hostname is registered."""


class PluginNotFound(NotFound):
    """No plugin of that name is registered with this Tenantry or installed (entry point)."""


class BackupNotFound(NotFound):
    """No backup has that id, or its archive is no longer in the storage."""


class Conflict(TenantryError):
    exit_code = 7
    http_status = 409


class TenantExists(Conflict):
    """A tenant with that slug exists already."""


class PlanExists(Conflict):
    """A plan with that name exists already (change it with ``tn.plans.update``)."""


class PlanInUse(Conflict):
    """The plan cannot be deleted: tenants are still on it, or other catalog rows name it."""

    def __init__(self, message: str, *, tenants: int = 0) -> None:
        super().__init__(message)
        #: tenants (not deleted) still on the plan
        self.tenants = tenants


class FlagExists(Conflict):
    """A feature flag with that key exists already, defined differently."""


class InvalidTransition(Conflict):
    """The tenant lifecycle does not allow this status change."""


class TenantMoving(Conflict):
    """The tenant's writes are frozen for the cutover of a move; retry in a moment.

    A conflict with the tenant's state (exit 7), answered over HTTP as a service briefly
    unavailable (503 with ``Retry-After``): the same request succeeds once the move flips.
    """

    http_status = 503
    retry_after = 1


class TenantRestoring(Conflict):
    """The tenant is being restored from a backup; its data is back when the restore ends.

    Like :class:`TenantMoving`: exit 7, HTTP 503 with ``Retry-After``.
    """

    http_status = 503
    retry_after = 5


class TenantMoved(TenantMoving):
    """The binding was made before the tenant moved: the database it names refuses it.

    Retry: a new binding (a new ``with tn.tenant(...)``, a new request) reaches the tenant
    where it lives now.
    """


class DomainTaken(Conflict):
    """The hostname is registered to another tenant."""


class TablesDiffer(Conflict):
    """A placement holds app tables or columns that this process's tables (the app's and its
    plugins') lack, so moving, copying or building from them would lose data. Nothing was
    changed; ``problems`` names each difference (``"webhooks_deliveries: no such table here"``).
    Load the same app and plugins as the app (``TENANTRY_APP``, ``TENANTRY_PLUGINS``), or run
    ``tenantry migrate``."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class TenantNotActive(TenantryError):
    """The tenant is not ``active`` and may not serve traffic."""

    exit_code = 8
    http_status = 403


class TenantSuspended(TenantNotActive):
    """The binding was made before the tenant was suspended, archived or deleted: the
    database refuses it from then on."""


class IsolationError(TenantryError):
    """PostgreSQL (or tenantry in front of it) refused an act across tenants."""

    exit_code = 9
    http_status = 403


class NoTenantBound(IsolationError):
    """Tenant-scoped work was attempted with no tenant bound to the context."""


class TenantContextError(IsolationError):
    """The tenant bound to the context differs from the one the open transaction serves."""


class MigrationFailed(TenantryError):
    """Some placements could not be migrated; they were rolled back and stay where they were."""

    exit_code = 10


class AuthenticationFailed(TenantryError):
    """An admin API request carried no API token, or one that is unknown, expired or revoked."""

    exit_code = 11
    http_status = 401


class PermissionDenied(TenantryError):
    """The API token is valid but lacks the scope the action needs (``scope`` names it)."""

    exit_code = 12
    http_status = 403

    def __init__(self, message: str, *, scope: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope


class VerificationFailed(TenantryError):
    """A domain's ownership check (HTTP token or DNS TXT record) did not pass; it stays pending."""

    exit_code = 13
    http_status = 422


class LimitExceeded(TenantryError):
    """A tenant is over one of the limits of its plan (or its own, where it has some); a
    retry after ``retry_in`` seconds (sent as ``Retry-After``, rounded up) may pass.

    ``limit`` names the limit (``rate``, ``concurrency``); ``fields`` are the header fields
    that describe it (``RateLimit-Policy``, ``RateLimit``), sent with the refusal. The other
    tenants are not affected: each tenant has its own budget.
    """

    exit_code = 14
    http_status = 429
    retry_after: ClassVar[int | None] = 1

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        retry_in: float | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_in = retry_in
        self.fields = dict(fields or {})


class RateLimited(LimitExceeded):
    """More requests per second than the tenant's ``requests_per_second`` and ``burst`` allow."""


class ConcurrencyLimited(LimitExceeded):
    """More requests in flight at once than the tenant's ``concurrency`` allows."""


class TooManyConnections(LimitExceeded):
    """The tenant holds as many database connections at once as its plan allows
    (``db_connections``) and none came back within the wait (``Settings.connect_timeout``);
    or, for a database-tier tenant, its database refused one more session (its ``CONNECTION
    LIMIT``, counted over every process). ``limit`` is ``"db_connections"``; ``held`` and
    ``cap`` say how many this process held and allowed (``None`` when the server refused).

    HTTP 429 with ``Retry-After``, as the edge's own limits: the tenant is over its own
    budget, the other tenants are not affected, and the same request passes once the
    tenant's other work gives a connection back.
    """

    def __init__(
        self, message: str, *, cap: int | None = None, held: int | None = None, retry_in: float | None = None
    ) -> None:
        super().__init__(message, limit="db_connections", retry_in=retry_in)
        self.cap = cap
        self.held = held


class StatementTimeout(LimitExceeded):
    """A statement ran longer than the tenant's plan allows (``statement_timeout_ms``): the
    database cancelled it and the transaction is aborted. The same work will be cancelled
    again; make it cheaper, or move the tenant to a plan that allows more."""

    http_status = 503
    retry_after: ClassVar[int | None] = None


class IdleInTransactionTimeout(LimitExceeded):
    """A transaction of the tenant sat idle longer than its plan allows
    (``idle_in_transaction_timeout_ms``): the database ended it and closed the connection."""

    http_status = 503
    retry_after: ClassVar[int | None] = None


class StorageQuotaExceeded(LimitExceeded):
    """The tenant's storage, as last measured (``tn.usage.measure_storage()``), is over its
    plan's ``storage_mb``: its transactions are read-only, so a write is refused and reads go
    on. Writes work again once a measurement finds it under the quota (rows deleted) or the
    quota is raised; a retry alone does not cure it (HTTP 507 Insufficient Storage)."""

    http_status = 507
    retry_after: ClassVar[int | None] = None


class Overloaded(TenantryError):
    """The process refuses work to protect itself: it holds as many requests in flight as
    its cap allows (``edge_max_in_flight``), or the limits' shared store (Redis) is out of
    reach and the edge is set to fail closed. Passes by itself: retry shortly."""

    exit_code = 15
    http_status = 503
    retry_after = 1
