"""Tenant resolvers: how a request names its tenant. Pure decisions, no I/O.

Each resolver reads a :class:`RequestInfo` (parsed once per request) and answers with a
:class:`Match` (this request names a tenant, by slug, by slug-or-id, or by a custom hostname
to look up), a :class:`Refusal` (the request must be refused, e.g. a forged token), or
``None`` (this resolver has nothing to say). :class:`~tenantry.web.TenantMiddleware` does the
lookups and decides.

Resolvers that read what a client can set freely (:class:`HeaderResolver`, and
:class:`JwtClaimResolver` with ``unverified=True``) are never in the default chain: an app
that puts them in its chain says that something in front of it (a gateway) sets or checks
that value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tenantry._asgi import Scope
from tenantry.core.hostnames import host_of, is_under, normalise_base_domain
from tenantry.errors import ConfigurationError
from tenantry.problems import ABOUT_BLANK, problem_type

__all__ = [
    "CustomDomainResolver",
    "HeaderResolver",
    "JwtClaimResolver",
    "Match",
    "PathPrefixResolver",
    "Refusal",
    "RequestInfo",
    "Resolver",
    "SubdomainResolver",
]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What resolvers read: the normalised host (port dropped; ``None`` if absent or not a
    hostname), the path below the app's ``root_path``, and the raw ASGI scope."""

    scope: Scope
    host: str | None
    path: str
    root_path: str

    @classmethod
    def from_scope(cls, scope: Scope) -> RequestInfo:
        host = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = host_of(value.decode("latin-1"))
                break
        path: str = scope.get("path", "")
        root_path: str = scope.get("root_path", "")
        # ASGI servers put the whole path in `path`; frameworks strip `root_path` from it
        if root_path and (path == root_path or path.startswith(root_path + "/")):
            path = path[len(root_path) :]
        return cls(scope=scope, host=host, path=path, root_path=root_path)

    def header(self, name: bytes) -> str | None:
        """The first value of a header (``name`` in lowercase bytes), or ``None``."""
        for key, value in self.scope.get("headers", ()):
            if key == name:
                return str(value.decode("latin-1"))
        return None

    def header_values(self, name: bytes) -> list[str]:
        """Every value a header (``name`` in lowercase bytes) was sent with, in order, each
        line split at commas (a proxy may fold repeated lines into one)."""
        return [
            part.strip()
            for key, value in self.scope.get("headers", ())
            if key == name
            for part in value.decode("latin-1").split(",")
        ]


@dataclass(frozen=True, slots=True)
class Match:
    """A request names a tenant.

    ``kind`` says how to read ``value``: ``slug`` (a slug only), ``key`` (a slug or a tenant
    id) or ``host`` (a custom hostname, routed only once verified). ``root_path`` replaces the
    scope's ``root_path`` when the tenant is served (a path prefix moves there).
    """

    source: str
    kind: Literal["slug", "key", "host"]
    value: str
    root_path: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The request must be refused with this problem (``status``, ``title``, ``detail``)."""

    source: str
    status: int
    title: str
    detail: str
    type_: str = ABOUT_BLANK
    headers: Mapping[str, str] = field(default_factory=dict)


class Resolver(Protocol):
    """One way of naming the tenant; ``name`` appears in errors and logs."""

    name: str

    def resolve(self, request: RequestInfo) -> Match | Refusal | None: ...


class SubdomainResolver:
    """``acme.example.com`` (any port) -> tenant ``acme``, for ``base_domain="example.com"``.

    Only one label deep: ``a.b.example.com`` and the base domain itself name no tenant, nor do
    the ``reserved`` labels (the app's own hosts).
    """

    name = "subdomain"

    def __init__(self, base_domain: str, *, reserved: Iterable[str] = ("www", "admin", "api")) -> None:
        self.base_domain = normalise_base_domain(base_domain)
        self.reserved = frozenset(label.lower() for label in reserved)

    def resolve(self, request: RequestInfo) -> Match | None:
        host = request.host
        if host is None or not is_under(host, self.base_domain):
            return None
        label = host[: -len(self.base_domain) - 1]
        if "." in label or label in self.reserved:
            return None
        return Match(self.name, "slug", label)


class CustomDomainResolver:
    """A verified custom domain (``shop.acme.com``) -> its tenant. Pending or unknown hostnames
    name no tenant. Hosts under ``base_domain`` are never custom domains (adding one is
    refused), so they are not looked up."""

    name = "domain"

    def __init__(self, base_domain: str | None = None) -> None:
        self.base_domain = None if base_domain is None else normalise_base_domain(base_domain)

    def resolve(self, request: RequestInfo) -> Match | None:
        host = request.host
        if host is None:
            return None
        if self.base_domain is not None and (host == self.base_domain or is_under(host, self.base_domain)):
            return None
        return Match(self.name, "host", host)


class HeaderResolver:
    """A request header (default ``X-Tenant``) holding a slug or tenant id.

    Any client can send any header: use this only behind a proxy that sets it (and removes what
    clients sent), or in internal service-to-service calls.
    """

    name = "header"

    def __init__(self, header: str = "x-tenant") -> None:
        self.header_name = header.lower().encode("latin-1")

    def resolve(self, request: RequestInfo) -> Match | Refusal | None:
        # two values would let two readers of the header (a proxy, this resolver, the app)
        # each take a different tenant: repeats must agree
        values = {v for v in request.header_values(self.header_name) if v}
        if not values:
            return None
        if len(values) > 1:
            return Refusal(
                self.name,
                400,
                "Conflicting tenant headers",
                f"the request sends the {self.header_name.decode('latin-1')} header with different values",
                problem_type("conflicting-tenant-headers"),
            )
        return Match(self.name, "key", values.pop())


class PathPrefixResolver:
    """``/t/acme/projects`` -> tenant ``acme``; the app sees ``/projects`` under the
    ``root_path`` ``/t/acme`` (the ASGI convention: ``path`` stays whole, ``root_path`` grows,
    so routing and ``url_for`` in Starlette, FastAPI and Litestar work unchanged)."""

    name = "path"

    def __init__(self, prefix: str = "/t") -> None:
        cleaned = "/" + prefix.strip("/")
        if cleaned == "/":
            raise ConfigurationError("the path prefix must not be empty (use e.g. '/t')")
        self.prefix = cleaned + "/"

    def resolve(self, request: RequestInfo) -> Match | None:
        path = request.path
        if not path.startswith(self.prefix):
            return None
        segment, _, _ = path[len(self.prefix) :].partition("/")
        if not segment:
            return None
        return Match(self.name, "slug", segment, root_path=f"{request.root_path}{self.prefix}{segment}")


class JwtClaimResolver:
    """A claim (default ``tenant``: a slug or tenant id) of a bearer JWT, with its signature,
    expiry, audience and issuer checked by PyJWT.

    ``key`` is the verification key (a secret for HS*, a public key for RS*/ES*/EdDSA), or a
    mapping of ``kid`` to keys. ``algorithms`` is the allow-list (``none`` is refused). A
    request without a bearer token is left to other resolvers; a token that fails any check
    is refused with 401. A valid token without the claim names no tenant.

    ``unverified=True`` reads the claim without checking the signature: only behind a gateway
    that has already verified the token.
    """

    name = "jwt"

    def __init__(
        self,
        key: Any = None,
        *,
        algorithms: Sequence[str] = ("RS256",),
        claim: str = "tenant",
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        leeway: float = 0.0,
        require: Sequence[str] = ("exp",),
        header: str = "authorization",
        unverified: bool = False,
    ) -> None:
        try:
            import jwt
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError("the JWT resolver needs PyJWT: pip install 'tenantry[web]'") from err
        self._jwt = jwt
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ConfigurationError("JWT algorithms must be a non-empty allow-list without 'none'")
        if key is None and not unverified:
            raise ConfigurationError("the JWT resolver needs a verification key (or unverified=True behind a gateway)")
        self.key = key
        self.algorithms = list(algorithms)
        self.claim = claim
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.require = list(require)
        self.header_name = header.lower().encode("latin-1")
        self.unverified = unverified

    def _refuse(self, detail: str) -> Refusal:
        return Refusal(
            self.name,
            401,
            "Invalid token",
            detail,
            problem_type("invalid-token"),
            {"www-authenticate": 'Bearer error="invalid_token"'},
        )

    def _key_for(self, token: str) -> Any:
        if not isinstance(self.key, Mapping):
            return self.key
        kid = self._jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or kid not in self.key:  # a client-made header: any JSON at all
            raise self._jwt.InvalidTokenError("unknown key id")
        return self.key[kid]

    def resolve(self, request: RequestInfo) -> Match | Refusal | None:
        value = request.header(self.header_name)
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        jwt = self._jwt
        try:
            if self.unverified:
                claims = jwt.decode(
                    token,
                    options={"verify_signature": False, "verify_exp": True, "require": self.require},
                    algorithms=self.algorithms,
                    leeway=self.leeway,
                )
            else:
                claims = jwt.decode(
                    token,
                    self._key_for(token),
                    algorithms=self.algorithms,
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": self.require},
                )
        except jwt.ExpiredSignatureError:
            return self._refuse("the bearer token has expired")
        except jwt.PyJWTError as err:  # InvalidTokenError, and InvalidKeyError for a key of the wrong kind
            return self._refuse(f"the bearer token is not valid ({type(err).__name__})")
        claimed = claims.get(self.claim)
        if claimed is None:
            return None
        if not isinstance(claimed, str) or not claimed:
            return self._refuse(f"the token's {self.claim!r} claim is not a tenant slug or id")
        return Match(self.name, "key", claimed)
