"""``/v1/domains``: tenants' custom hostnames: add, verify, list, read, remove.

A hostname in a path or a body may be spelt any way the service accepts (``Shop.Acme.COM.``,
``bücher.example``): it is normalised (lowercase IDNA A-labels, no trailing dot) before it is
looked up, as :mod:`tenantry.services.domains` does. Adding answers 201 with how to prove the
domain (the token, where the HTTP check fetches it, the DNS TXT record); adding it again to
the same tenant answers 200 and changes nothing.

Verifying fetches from the network (an HTTP request to the hostname, or a DNS query) with the
checkers' timeouts: it runs in a worker thread, at most :data:`VERIFY_CONCURRENCY` at a time
per app, so slow hosts neither block the event loop nor take every thread other requests
need. The checkers are :func:`~tenantry.services.domain_checks.checker_for`'s unless
``create_admin_app(tn, domain_checkers={...})`` gives others; a request cannot choose where
the check connects.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, paginate, text_key
from tenantry.api.schemas import In, Text
from tenantry.app import Tenantry
from tenantry.core.hostnames import DNS_PREFIX, WELL_KNOWN, normalise_hostname
from tenantry.db.catalog import domains as catalog_domains
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog.domains import Domain
from tenantry.errors import DomainNotFound, InvalidHostname
from tenantry.services.domain_checks import DomainChecker, checker_for

__all__ = [
    "VERIFY_CONCURRENCY",
    "DnsRecordOut",
    "DomainIn",
    "DomainOut",
    "DomainPage",
    "VerifyIn",
    "domain_out",
    "router",
]

router = APIRouter(prefix="/domains", tags=["domains"])

Read = Annotated[Principal, Depends(require("domains:read"))]
Write = Annotated[Principal, Depends(require("domains:write"))]
Host = Annotated[
    Text,
    Path(max_length=300, description="The hostname, any spelling (`Shop.Acme.COM.` is `shop.acme.com`)."),
]

#: verifications one app runs at once (each may wait on the network for its timeouts)
VERIFY_CONCURRENCY = 8
_LIMITER = "tenantry.domain_checks.limiter"


class DnsRecordOut(BaseModel):
    name: str = Field(description=f"`{DNS_PREFIX}.<hostname>`.")
    type: Literal["TXT"] = "TXT"
    value: str = Field(description="`tenantry-verification=<token>`.")


class DomainOut(BaseModel):
    hostname: str = Field(description="Normalised: lowercase IDNA A-labels, no trailing dot.")
    tenant: str = Field(description="The tenant's slug.")
    tenant_id: uuid.UUID
    status: Literal["pending", "verified"] = Field(description="Only verified domains route requests.")
    method: Literal["http", "dns"] | None = Field(description="How it was verified.")
    verified_at: datetime | None
    created_at: datetime
    token: str = Field(description="What proves the domain: served over HTTP or published in DNS.")
    http_path: str = Field(
        description=f"The path the HTTP check fetches (`{WELL_KNOWN}<token>`); it must answer the token."
    )
    http_check: str = Field(description="The URL the HTTP check fetches.")
    dns_check: DnsRecordOut = Field(description="The TXT record the DNS check looks for.")


class DomainPage(BaseModel):
    items: list[DomainOut]
    next: str | None = Field(None, description="URL of the next page; absent on the last one.")
    next_cursor: str | None = None


class DomainIn(In):
    hostname: Text = Field(
        max_length=300, description="The hostname, e.g. `shop.acme.com`.", examples=["shop.acme.com"]
    )
    tenant: Text = Field(max_length=100, description="The tenant's slug or id.", examples=["acme"])


class VerifyIn(In):
    method: Literal["http", "dns"] = Field(
        "http",
        description="`http`: the token at `http://<hostname>/.well-known/tenantry/<token>`; `dns`: the TXT record.",
    )


def domain_out(domain: Domain) -> DomainOut:
    data = domain.to_dict()
    return DomainOut.model_validate({**data, "http_path": f"{WELL_KNOWN}{domain.token}"})


@router.get("", response_model=DomainPage, responses=problems(404))
def list_domains(
    tn: TN,
    _: Read,
    request: Request,
    response: Response,
    limit: Limit = 100,
    cursor: Cursor = None,
    tenant: Annotated[
        Text | None, Query(max_length=100, description="Only this tenant's domains (slug or id).")
    ] = None,
) -> DomainPage:
    """Custom domains by hostname, a page at a time; an unknown `tenant` is a 404.
    Scope: `domains:read`."""
    after = None if cursor is None else decode_cursor(cursor, text_key)[0]
    with tn.admin() as conn:
        owner = None if tenant is None else catalog_tenants.get_tenant(conn, tenant).id
        found = catalog_domains.list_domains(conn, owner, after=after, limit=limit + 1)
    page, url, next_cursor = paginate(request, response, found, limit, lambda d: (d.hostname,))
    return DomainPage(items=[domain_out(d) for d in page], next=url, next_cursor=next_cursor)


def _registered(tn: Tenantry, hostname: str) -> Domain | None:
    try:
        return tn.domains.get(hostname)
    except (DomainNotFound, InvalidHostname):
        return None  # add_domain says what is wrong with it


@router.post(
    "",
    status_code=201,
    response_model=DomainOut,
    responses={
        200: {"model": DomainOut, "description": "The tenant had this domain already."},
        **problems(400, 404, 409),
    },
)
def add_domain(tn: TN, _: Write, body: DomainIn, response: Response) -> DomainOut:
    """Register a custom domain for a tenant, pending until verified: the answer says how to
    prove it. Adding it again to the same tenant answers 200 with it as it is; a hostname
    another tenant has is a 409. Scope: `domains:write`."""
    before = _registered(tn, body.hostname)
    domain = tn.domains.add(body.hostname, body.tenant)
    if before is not None and before.tenant_id == domain.tenant_id and before.token == domain.token:
        response.status_code = 200
    response.headers["Location"] = f"/v1/domains/{domain.hostname}"
    return domain_out(domain)


@router.get("/{hostname}", response_model=DomainOut, responses=problems(404))
def get_domain(tn: TN, _: Read, hostname: Host) -> DomainOut:
    """One domain, with its verification instructions. Scope: `domains:read`."""
    return domain_out(tn.domains.get(hostname))


def _checker(request: Request, method: str) -> DomainChecker:
    configured = request.app.state.domain_checkers
    checker = configured.get(method) if configured is not None else None
    return checker if checker is not None else checker_for(method)


def _limiter(request: Request) -> anyio.CapacityLimiter:
    state = request.app.state
    limiter = getattr(state, "domain_check_limiter", None)
    if limiter is None:  # made in the app's event loop, on first use
        limiter = state.domain_check_limiter = anyio.CapacityLimiter(VERIFY_CONCURRENCY)
    assert isinstance(limiter, anyio.CapacityLimiter)
    return limiter


@router.post("/{hostname}/verify", response_model=DomainOut, responses=problems(400, 404, 409))
async def verify_domain(tn: TN, _: Write, hostname: Host, body: VerifyIn, request: Request) -> DomainOut:
    """Check that the domain proves its token (over HTTP, or in DNS) and mark it verified:
    200 with the domain. A check that does not pass is a 422 (`verification-failed`) saying
    what to publish; the domain stays pending. A verified domain is answered as it is, with
    no check. Scope: `domains:write`."""
    checker = _checker(request, body.method)
    # runs in a worker thread (the context, and so the audit actor, goes with it)
    domain = await anyio.to_thread.run_sync(
        lambda: tn.domains.verify(hostname, checker=checker), limiter=_limiter(request)
    )
    return domain_out(domain)


@router.delete("/{hostname}", response_model=DomainOut, responses=problems(404))
def remove_domain(tn: TN, _: Write, hostname: Host) -> DomainOut:
    """Remove a domain: it stops routing at once. Answers the domain removed; one that is
    not registered is a 404. Scope: `domains:write`."""
    removed = tn.domains.remove(hostname)
    if removed is None:
        raise DomainNotFound(f"no domain {normalise_hostname(hostname)!r} is registered")
    return domain_out(removed)
