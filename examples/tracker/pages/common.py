"""What every page shares: the request's database session, tenant and member, and small helpers.

A handler that takes ``page: PageDep`` is for signed-in members only (anyone else is sent to
``/login``) and gets a :class:`Page`: the database session, the tenant as the pages show it
(:class:`Org`) and the signed-in member. A handler that takes ``page: FormPage`` also checks
the form's CSRF token. The queries need no tenant filter: tenantry binds the request's tenant
to the transaction and row-level security hides every other tenant's rows.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from examples.tracker.features import CSV_EXPORT, WEBHOOKS
from examples.tracker.models import Comment, Member, Project, Task
from examples.tracker.sessions import read_session
from examples.tracker.tenancy import request_tenant
from tenantry import Tenantry

__all__ = [
    "Db",
    "FormPage",
    "LoginRequired",
    "Org",
    "OrgDep",
    "Page",
    "PageDep",
    "by_id",
    "count",
    "email_field",
    "get_project",
    "get_task",
    "members_by_id",
    "templates",
    "text_field",
    "tenantry_of",
]

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,60}")
_Row = TypeVar("_Row", Member, Project, Task, Comment)


class LoginRequired(Exception):
    """Raised for a page that needs a signed-in member; the app redirects to ``/login``."""


def tenantry_of(request: Request) -> Tenantry:
    """The app's :class:`tenantry.Tenantry`."""
    tn: Tenantry = request.app.state.tn
    return tn


def templates(request: Request) -> Jinja2Templates:
    """The app's templates (one set per app: its ``brand()`` helper belongs to that app's Tenantry)."""
    found: Jinja2Templates = request.app.state.templates
    return found


@dataclass(frozen=True, slots=True)
class Org:
    """The tenant serving this request, as the pages show it."""

    slug: str
    name: str
    plan: str
    tier: str
    csv_export: bool = False
    """The ``csv-export`` flag is on for this tenant."""
    webhooks: bool = False
    """The ``webhooks`` plugin runs for this tenant."""


@dataclass(slots=True)
class Page:
    """What every signed-in handler gets: the database session, the tenant, the member."""

    request: Request
    db: AsyncSession
    org: Org
    user: Member
    csrf: str

    @property
    def tn(self) -> Tenantry:
        return tenantry_of(self.request)

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        """``template`` with the tenant, the member and the CSRF token, and ``values``."""
        return templates(self.request).TemplateResponse(
            self.request,
            template,
            {"org": self.org, "user": self.user, "csrf": self.csrf, **values},
            status_code=status_code,
        )


# -- dependencies -------------------------------------------------------------------------------
async def _db(request: Request) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(tenantry_of(request).async_engine(), expire_on_commit=False) as session:
        yield session


def _org_of(tn: Tenantry) -> Org:
    bound = request_tenant()
    tn.branding.current()  # warm the brand cache here, off the event loop, for brand() in templates
    # from the process's cache, read through the routing views: this works in a process that
    # holds the runtime and reader roles' credentials only (see docs/deployment.md)
    tenant, placement = tn.tenants.lookup(bound.id), tn.tenants.lookup_placement(bound.id)
    return Org(
        slug=tenant.slug,
        name=tenant.name,
        plan=tenant.plan,
        tier=placement.isolation.value if placement else "",
        # both from the process's caches, which follow changes made anywhere within a second
        csv_export=tn.flags.enabled(CSV_EXPORT),
        webhooks=tn.plugins.is_enabled(WEBHOOKS),
    )


async def _org(request: Request) -> Org:
    # a cache miss reads the catalog through a (blocking) pool: off the event loop
    return await asyncio.to_thread(_org_of, tenantry_of(request))


Db = Annotated[AsyncSession, Depends(_db)]
OrgDep = Annotated[Org, Depends(_org)]


async def _page(request: Request, db: Db, org: OrgDep) -> Page:
    session = read_session(request)
    if session is None:
        raise LoginRequired()
    user = await by_id(db, Member, session.member_id)
    if user is None:
        raise LoginRequired()
    return Page(request=request, db=db, org=org, user=user, csrf=session.csrf)


async def _form_page(
    request: Request, page: Annotated[Page, Depends(_page)], csrf: Annotated[str, Form()] = ""
) -> Page:
    """A signed-in page posting a form: the form must carry the session's CSRF token."""
    if not hmac.compare_digest(csrf.encode(), page.csrf.encode()):
        raise HTTPException(403, "the form expired; reload the page and try again")
    return page


PageDep = Annotated[Page, Depends(_page)]
FormPage = Annotated[Page, Depends(_form_page)]


# -- queries ----------------------------------------------------------------------------------
async def by_id(db: AsyncSession, model: type[_Row], row_id: int) -> _Row | None:
    """The row of ``model`` with this id, if the tenant has one."""
    # the primary key is (tenant, id): the tenant is the one bound, so the id alone suffices
    found: _Row | None = await db.scalar(sa.select(model).where(model.id == row_id))
    return found


async def get_project(db: AsyncSession, project_id: int) -> Project:
    """The project, or 404 (another tenant's project id finds nothing)."""
    project = await by_id(db, Project, project_id)
    if project is None:
        raise HTTPException(404, "no such project")
    return project


async def get_task(db: AsyncSession, task_id: int) -> Task:
    """The task, or 404."""
    task = await by_id(db, Task, task_id)
    if task is None:
        raise HTTPException(404, "no such task")
    return task


async def members_by_id(db: AsyncSession) -> dict[int, Member]:
    """The tenant's members by id, in order of name."""
    return {m.id: m for m in (await db.scalars(sa.select(Member).order_by(Member.name))).all()}


async def count(db: AsyncSession, model: type[Any], *where: Any) -> int:
    """How many rows of ``model`` match ``where``."""
    return int(await db.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


# -- form fields --------------------------------------------------------------------------------
def text_field(value: str, label: str, limit: int, errors: list[str], *, required: bool = True) -> str:
    """``value`` stripped; what is wrong with it appended to ``errors``."""
    value = value.strip()
    if required and not value:
        errors.append(f"{label} is required")
    elif len(value) > limit:
        errors.append(f"{label} is longer than {limit} characters")
    return value


def email_field(value: str, errors: list[str]) -> str:
    """``value`` as an e-mail address, stripped and lower-cased; if it is none, ``errors`` says so."""
    value = value.strip().lower()
    if not _EMAIL.fullmatch(value):
        errors.append("that is not an e-mail address")
    return value
