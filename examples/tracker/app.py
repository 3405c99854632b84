"""The tracker's web app: FastAPI + Jinja2 over tenantry.

Every request is for one tenant, bound by :mod:`examples.tracker.tenancy` from the host name.
The handlers query the tables as if the database held one organisation: tenantry binds the
tenant to each transaction and PostgreSQL's row-level security hides everyone else's rows, so
another tenant's project id simply finds nothing (404).

Tenants differ by more than their data and brand: the ``csv-export`` flag and the ``webhooks``
plugin are switched per tenant (see :mod:`examples.tracker.features`), and the pages show or
hide what they bring as the running app learns of a change, within a second.

Sign-in is deliberately small: pick a member of this tenant by e-mail (a demo has no
passwords). The session cookie is host-only and signed with a key derived for the tenant, and
it names the tenant it was issued for, so a cookie carried from one tenant's site to
another's authenticates nobody. Forms carry a per-session CSRF token. The signing key is
derived from tenantry's stored secret (``TENANTRY_SECRET_KEYS``, or the embedded server's key
file), so sessions outlive a restart and every instance of the app accepts the others'.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import html
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from examples.tracker.features import CSV_EXPORT, WEBHOOKS
from examples.tracker.models import Comment, Member, Priority, Project, Role, Task, TaskStatus
from examples.tracker.sessions import SESSION_COOKIE, end_session, read_session, session_keys, signed_in, start_session
from examples.tracker.tenancy import install_tenancy, request_tenant
from tenantry import BrandRoutes, Status, Tenantry, install_brand_helpers, mount_plugins
from tenantry.contrib.webhooks import Delivery, WebhookWorker, aqueue
from tenantry.web import NoTenantPage, RequestInfo

__all__ = ["SESSION_COOKIE", "create_app", "site_directory"]

_KEY = re.compile(r"[A-Z][A-Z0-9]{1,9}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,60}")
#: advisory lock namespace of the first-account check (the second key: the tenant)
_FIRST_ACCOUNT_LOCK = 0x7472

_Row = TypeVar("_Row", Member, Project, Task, Comment)

_TEMPLATES = str(Path(__file__).parent / "templates")


def _templates(request: Request) -> Jinja2Templates:
    # one set per app: its brand() helper belongs to that app's Tenantry
    templates: Jinja2Templates = request.app.state.templates
    return templates


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

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return _templates(self.request).TemplateResponse(
            self.request, template, {"org": self.org, "user": self.user, "csrf": self.csrf, **values},
            status_code=status_code,
        )


class _LoginRequired(Exception):
    pass


def create_app(
    tn: Tenantry, base_domain: str = "localhost", *, secret_key: str | None = None,
    no_tenant_page: NoTenantPage | None = None,
) -> FastAPI:
    """The tracker as an ASGI app serving every tenant of ``tn`` at ``<slug>.<base_domain>``.

    ``no_tenant_page`` makes the page a browser gets at a host that names no tenant (such as
    ``http://localhost:8000/``); by default a neutral one. The demo passes
    :func:`site_directory`.

    ``secret_key`` signs session cookies. By default the key is derived from tenantry's
    stored secret (:meth:`tenantry.Tenantry.secret_keyring`: ``TENANTRY_SECRET_KEYS``, or the
    embedded server's key file), so sessions survive a restart and any instance of the app
    on the same catalog accepts another's cookies; rotating those keys keeps accepting
    cookies signed with the older ones. With no stored secret, a random key (sessions end
    with the process; a warning says so).
    """
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the webhooks plugin's deliveries go out from a worker thread beside the server
        worker = WebhookWorker(tn) if WEBHOOKS in tn.plugins else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)

    app = FastAPI(title="tracker", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.tn = tn
    app.state.session_keys = session_keys(tn, secret_key)
    app.state.templates = Jinja2Templates(directory=_TEMPLATES)
    # the tenant's brand: brand() in templates, its stylesheet and images under /_brand
    install_brand_helpers(app.state.templates.env, tn)
    app.mount("/_brand", BrandRoutes(tn))
    # plugins' own routes (/_plugins/webhooks/...), for signed-in members of tenants that have them
    mount_plugins(app, tn, authorize=signed_in)
    app.include_router(_routes())

    @app.exception_handler(_LoginRequired)
    async def _to_login(request: Request, exc: _LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(HTTPException)
    async def _error_page(request: Request, exc: HTTPException) -> Response:
        return _templates(request).TemplateResponse(
            request, "error.html", {"status": exc.status_code, "detail": exc.detail, "org": None, "user": None},
            status_code=exc.status_code,
        )

    install_tenancy(app, tn, base_domain, no_tenant_page=no_tenant_page)
    return app


def site_directory(tn: Tenantry, base_domain: str = "localhost", *, limit: int = 100) -> NoTenantPage:
    """A page listing the active tenants' sites, with links, for hosts that name no tenant.

    For a demo: it reads the catalog's list of tenants (a control-plane process), and a
    production app should not tell anyone who asks who its customers are.
    """
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True)
    install_brand_helpers(env, tn)  # no tenant is bound here: brand() gives the defaults
    template = env.get_template("sites.html")

    def page(request: RequestInfo) -> str:
        tenants = tn.list_tenants(status=Status.ACTIVE, limit=limit)
        host = request.header(b"host") or ""
        port = host.rsplit(":", 1)[1] if ":" in host.rsplit("]", 1)[-1] else ""
        scheme = str(request.scope.get("scheme", "http"))
        suffix = f":{port}" if port.isdigit() and (scheme, port) not in (("http", "80"), ("https", "443")) else ""
        sites = [(t.name, f"{scheme}://{t.slug}.{base_domain}{suffix}/") for t in tenants]
        return template.render(sites=sites, more=len(tenants) == limit, org=None, user=None)

    return page


# -- dependencies -------------------------------------------------------------------------------
async def _db(request: Request) -> AsyncIterator[AsyncSession]:
    tn: Tenantry = request.app.state.tn
    async with AsyncSession(tn.async_engine(), expire_on_commit=False) as session:
        yield session


def _org_of(tn: Tenantry) -> Org:
    bound = request_tenant()
    tn.branding.current()  # warm the brand cache here, off the event loop, for brand() in templates
    # from the process's cache, read through the routing views: this works in a process that
    # holds the runtime and reader roles' credentials only (see docs/deployment.md)
    tenant, placement = tn.lookup(bound.id), tn.lookup_placement(bound.id)
    return Org(
        slug=tenant.slug, name=tenant.name, plan=tenant.plan, tier=placement.isolation.value if placement else "",
        # both from the process's caches, which follow changes made anywhere within a second
        csv_export=tn.flags.enabled(CSV_EXPORT), webhooks=tn.plugins.is_enabled(WEBHOOKS),
    )


async def _org(request: Request) -> Org:
    # a cache miss reads the catalog through a (blocking) pool: off the event loop
    return await asyncio.to_thread(_org_of, request.app.state.tn)


Db = Annotated[AsyncSession, Depends(_db)]
OrgDep = Annotated[Org, Depends(_org)]


async def _page(request: Request, db: Db, org: OrgDep) -> Page:
    session = read_session(request)
    if session is None:
        raise _LoginRequired()
    user = await _by_id(db, Member, session.member_id)
    if user is None:
        raise _LoginRequired()
    return Page(request=request, db=db, org=org, user=user, csrf=session.csrf)


async def _form_page(request: Request, page: Annotated[Page, Depends(_page)], csrf: Annotated[str, Form()] = "") -> Page:
    """A signed-in page posting a form: the form must carry the session's CSRF token."""
    if not hmac.compare_digest(csrf.encode(), page.csrf.encode()):
        raise HTTPException(403, "the form expired; reload the page and try again")
    return page


PageDep = Annotated[Page, Depends(_page)]
FormPage = Annotated[Page, Depends(_form_page)]


# -- queries ----------------------------------------------------------------------------------
async def _by_id(db: AsyncSession, model: type[_Row], row_id: int) -> _Row | None:
    # the primary key is (tenant, id): the tenant is the one bound, so the id alone suffices
    found: _Row | None = await db.scalar(sa.select(model).where(model.id == row_id))
    return found


async def _project(db: AsyncSession, project_id: int) -> Project:
    project = await _by_id(db, Project, project_id)
    if project is None:
        raise HTTPException(404, "no such project")
    return project


async def _task(db: AsyncSession, task_id: int) -> Task:
    task = await _by_id(db, Task, task_id)
    if task is None:
        raise HTTPException(404, "no such task")
    return task


async def _members(db: AsyncSession) -> dict[int, Member]:
    return {m.id: m for m in (await db.scalars(sa.select(Member).order_by(Member.name))).all()}


async def _count(db: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await db.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


def _text(value: str, label: str, limit: int, errors: list[str], *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        errors.append(f"{label} is required")
    elif len(value) > limit:
        errors.append(f"{label} is longer than {limit} characters")
    return value


# -- pages ------------------------------------------------------------------------------------
def _routes() -> APIRouter:
    router = APIRouter()

    def login_page(
        request: Request, org: Org, *, first: bool, status_code: int = 200, errors: list[str] | None = None,
        form: dict[str, str] | None = None,
    ) -> HTMLResponse:
        return _templates(request).TemplateResponse(
            request, "login.html", {"org": org, "user": None, "first": first, "errors": errors or [], "form": form or {}},
            status_code=status_code,
        )

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, db: Db, org: OrgDep) -> HTMLResponse:
        # a tenant with nobody in it yet (made with `tenantry tenants create`) offers its first account
        return login_page(request, org, first=await _count(db, Member) == 0)

    @router.post("/login")
    async def login(request: Request, db: Db, org: OrgDep, email: Annotated[str, Form()] = "") -> Response:
        member = await db.scalar(sa.select(Member).where(Member.email == email.strip().lower()))
        if member is None:
            first = await _count(db, Member) == 0
            return login_page(request, org, first=first, status_code=401, errors=[f"{org.name} has no member with that e-mail"])
        response = RedirectResponse("/", status_code=303)
        start_session(request, response, member)
        return response

    @router.post("/first-account")
    async def first_account(
        request: Request, db: Db, org: OrgDep, email: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
    ) -> Response:
        """The tenant's first member, who becomes its owner; refused (409) once it has one."""
        errors: list[str] = []
        email = email.strip().lower()
        if not _EMAIL.fullmatch(email):
            errors.append("that is not an e-mail address")
        name = _text(name, "name", 120, errors)
        if errors:
            return login_page(request, org, first=True, status_code=422, errors=errors, form={"email": email, "name": name})
        # check and insert in one transaction, under a lock of this tenant's: of two requests
        # racing to be first, the second waits for the first to commit, then finds a member
        await db.execute(sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:tenant))"), {
            "space": _FIRST_ACCOUNT_LOCK, "tenant": str(request_tenant().id),
        })
        if await _count(db, Member) > 0:
            await db.rollback()
            return login_page(request, org, first=False, status_code=409, errors=[
                f"{org.name} has its first account already: sign in, or ask its owner to add you",
            ])
        owner = Member(email=email, name=name, role=Role.owner)
        db.add(owner)
        await db.commit()
        response = RedirectResponse("/", status_code=303)
        start_session(request, response, owner)
        return response

    @router.post("/logout")
    async def logout(page: FormPage) -> Response:
        response = RedirectResponse("/login", status_code=303)
        end_session(response)
        return response

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon(request: Request) -> Response:
        """The tenant's brand icon, or one drawn from its colours and initial (browsers ask
        for this path whatever the page links)."""
        tn: Tenantry = request.app.state.tn
        brand = await tn.branding.acurrent()
        headers = {"cache-control": "public, max-age=300"}
        if brand.theme.favicon is not None:
            found = await tn.branding.aasset(brand, brand.theme.favicon.filename)
            if found is not None:
                return Response(found[1], media_type=found[0], headers=headers)
        colors = brand.theme.colors  # validated #rrggbb values
        initial = html.escape((brand.product_name.strip() or "t")[0].upper())
        icon = (
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
            f'<rect width="32" height="32" rx="7" fill="{colors.primary}"/>'
            f'<text x="16" y="22.5" font-family="system-ui,sans-serif" font-size="19" font-weight="700"'
            f' text-anchor="middle" fill="{colors.on_primary}">{initial}</text></svg>'
        )
        return Response(icon, media_type="image/svg+xml", headers=headers)

    @router.get("/", response_class=HTMLResponse)
    async def dashboard(page: PageDep) -> HTMLResponse:
        db = page.db
        counts = {
            "projects": await _count(db, Project),
            "open_tasks": await _count(db, Task, Task.status != TaskStatus.done),
            "done_tasks": await _count(db, Task, Task.status == TaskStatus.done),
            "members": await _count(db, Member),
            "comments": await _count(db, Comment),
        }
        mine = (
            await db.execute(
                sa.select(Task, Project)
                .join(Project, Project.id == Task.project_id)
                .where(Task.assignee_id == page.user.id, Task.status != TaskStatus.done)
                .order_by(Task.due_on.asc().nulls_last(), Task.id)
            )
        ).all()
        recent = (
            await db.execute(
                sa.select(Comment, Task, Member)
                .join(Task, Task.id == Comment.task_id)
                .join(Member, Member.id == Comment.author_id)
                .order_by(Comment.created_at.desc(), Comment.id.desc())
                .limit(5)
            )
        ).all()
        return page.render("dashboard.html", counts=counts, mine=mine, recent=recent, today=date.today())

    async def projects_page(page: Page, errors: list[str] | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
        tally = (
            sa.select(
                Task.project_id,
                sa.func.count().label("tasks"),
                sa.func.count().filter(Task.status == TaskStatus.done).label("done"),
            )
            .group_by(Task.project_id)
            .subquery()
        )
        rows = (
            await page.db.execute(
                sa.select(Project, sa.func.coalesce(tally.c.tasks, 0), sa.func.coalesce(tally.c.done, 0))
                .outerjoin(tally, tally.c.project_id == Project.id)
                .order_by(Project.name)
            )
        ).all()
        return page.render(
            "projects.html", 422 if errors else 200, rows=rows, members=await _members(page.db),
            errors=errors or [], form=form or {},
        )

    @router.get("/projects", response_class=HTMLResponse)
    async def projects(page: PageDep) -> HTMLResponse:
        return await projects_page(page)

    @router.post("/projects")
    async def add_project(
        page: FormPage,
        name: Annotated[str, Form()] = "",
        key: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
    ) -> Response:
        errors: list[str] = []
        name = _text(name, "name", 200, errors)
        description = _text(description, "description", 5000, errors, required=False)
        key = key.strip().upper() or _key_from(name)
        if not _KEY.fullmatch(key):
            errors.append("key must be 2 to 10 capital letters or digits, starting with a letter")
        if not errors:
            project = Project(name=name, key=key, description=description, owner_id=page.user.id)
            page.db.add(project)
            try:
                await page.db.flush()
            except IntegrityError:
                await page.db.rollback()
                errors.append(f"a project with key {key} exists already")
            else:
                if page.org.webhooks:  # queued in this transaction: sent if and only if the project is saved
                    await aqueue(_tn(page), page.db, "project.created", {
                        "id": project.id, "key": key, "name": name, "owner": page.user.email,
                    })
                await page.db.commit()
                return RedirectResponse(f"/projects/{project.id}", status_code=303)
        return await projects_page(page, errors, {"name": name, "key": key, "description": description})

    async def project_page(page: Page, project_id: int, errors: list[str] | None = None) -> HTMLResponse:
        project = await _project(page.db, project_id)
        tasks = (
            await page.db.scalars(
                sa.select(Task).where(Task.project_id == project.id).order_by(Task.status, Task.priority.desc(), Task.id)
            )
        ).all()
        return page.render(
            "project.html", 422 if errors else 200, project=project, tasks=tasks, members=await _members(page.db),
            priorities=list(Priority), statuses=list(TaskStatus), errors=errors or [],
        )

    @router.get("/projects/{project_id}", response_class=HTMLResponse)
    async def project_detail(page: PageDep, project_id: int) -> HTMLResponse:
        return await project_page(page, project_id)

    @router.get("/projects/{project_id}/tasks.csv")
    async def export_tasks(page: PageDep, project_id: int) -> Response:
        if not page.org.csv_export:  # the feature flag is off for this tenant
            raise HTTPException(404, "no such page")
        project = await _project(page.db, project_id)
        members = await _members(page.db)
        tasks = (await page.db.scalars(sa.select(Task).where(Task.project_id == project.id).order_by(Task.id))).all()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["task", "title", "status", "priority", "assignee", "due"])
        for task in tasks:
            assignee = members[task.assignee_id].email if task.assignee_id in members else ""
            writer.writerow([f"{project.key}-{task.id}", _cell(task.title), task.status.value, task.priority.value,
                             assignee, task.due_on or ""])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="{project.key}-tasks.csv"', "cache-control": "private, no-store",
        })

    @router.get("/webhooks", response_class=HTMLResponse)
    async def webhooks(page: PageDep) -> HTMLResponse:
        if not page.org.webhooks:  # the plugin is off for this tenant
            raise HTTPException(404, "no such page")
        tn = _tn(page)
        config = await asyncio.to_thread(lambda: tn.config().webhooks)  # type: ignore[attr-defined]
        deliveries = (await page.db.scalars(sa.select(Delivery).order_by(Delivery.id.desc()).limit(20))).all()
        return page.render("webhooks.html", config=config, deliveries=deliveries)

    @router.post("/projects/{project_id}/tasks")
    async def add_task(
        page: FormPage,
        project_id: int,
        title: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
        priority: Annotated[str, Form()] = "normal",
        assignee: Annotated[str, Form()] = "",
        due_on: Annotated[str, Form()] = "",
    ) -> Response:
        project = await _project(page.db, project_id)
        errors: list[str] = []
        title = _text(title, "title", 200, errors)
        description = _text(description, "description", 5000, errors, required=False)
        chosen_priority = Priority.__members__.get(priority)
        if chosen_priority is None:
            errors.append("unknown priority")
        assignee_id: int | None = None
        if assignee:
            member = await _by_id(page.db, Member, int(assignee)) if assignee.isdigit() else None
            if member is None:
                errors.append("the assignee is not a member of this organisation")
            else:
                assignee_id = member.id
        due: date | None = None
        if due_on:
            try:
                due = date.fromisoformat(due_on)
            except ValueError:
                errors.append("due date must look like 2025-12-31")
        if errors:
            return await project_page(page, project.id, errors)
        task = Task(
            project_id=project.id, title=title, description=description, priority=chosen_priority,
            assignee_id=assignee_id, due_on=due,
        )
        page.db.add(task)
        await page.db.flush()
        if page.org.webhooks:
            await aqueue(_tn(page), page.db, "task.created", {
                "id": task.id, "project": project.key, "title": title, "priority": task.priority.value,
                "due_on": due, "created_by": page.user.email,
            })
        await page.db.commit()
        return RedirectResponse(f"/tasks/{task.id}", status_code=303)

    async def task_page(page: Page, task_id: int, errors: list[str] | None = None) -> HTMLResponse:
        task = await _task(page.db, task_id)
        project = await _project(page.db, task.project_id)
        comments = (
            await page.db.scalars(sa.select(Comment).where(Comment.task_id == task.id).order_by(Comment.created_at, Comment.id))
        ).all()
        return page.render(
            "task.html", 422 if errors else 200, task=task, project=project, comments=comments,
            members=await _members(page.db), statuses=list(TaskStatus), errors=errors or [],
        )

    @router.get("/tasks/{task_id}", response_class=HTMLResponse)
    async def task_detail(page: PageDep, task_id: int) -> HTMLResponse:
        return await task_page(page, task_id)

    @router.post("/tasks/{task_id}/comments")
    async def add_comment(page: FormPage, task_id: int, body: Annotated[str, Form()] = "") -> Response:
        task = await _task(page.db, task_id)
        errors: list[str] = []
        body = _text(body, "comment", 5000, errors)
        if errors:
            return await task_page(page, task.id, errors)
        page.db.add(Comment(task_id=task.id, author_id=page.user.id, body=body))
        await page.db.commit()
        return RedirectResponse(f"/tasks/{task.id}", status_code=303)

    @router.post("/tasks/{task_id}/status")
    async def set_status(page: FormPage, task_id: int, status: Annotated[str, Form()] = "") -> Response:
        task = await _task(page.db, task_id)
        chosen = TaskStatus.__members__.get(status)
        if chosen is None:
            return await task_page(page, task.id, ["unknown status"])
        task.status = chosen
        await page.db.commit()
        return RedirectResponse(f"/tasks/{task.id}", status_code=303)

    async def members_page(page: Page, errors: list[str] | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
        open_tasks = (
            sa.select(Task.assignee_id, sa.func.count().label("open"))
            .where(Task.status != TaskStatus.done)
            .group_by(Task.assignee_id)
            .subquery()
        )
        rows = (
            await page.db.execute(
                sa.select(Member, sa.func.coalesce(open_tasks.c.open, 0))
                .outerjoin(open_tasks, open_tasks.c.assignee_id == Member.id)
                .order_by(Member.name)
            )
        ).all()
        return page.render(
            "members.html", 422 if errors else 200, rows=rows, roles=list(Role), errors=errors or [], form=form or {},
            can_invite=page.user.role in (Role.owner, Role.admin),
        )

    @router.get("/members", response_class=HTMLResponse)
    async def members(page: PageDep) -> HTMLResponse:
        return await members_page(page)

    @router.post("/members")
    async def add_member(
        page: FormPage,
        email: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
        title: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "member",
    ) -> Response:
        if page.user.role not in (Role.owner, Role.admin):
            raise HTTPException(403, "only owners and admins add members")
        errors: list[str] = []
        email = email.strip().lower()
        if not _EMAIL.fullmatch(email):
            errors.append("that is not an e-mail address")
        name = _text(name, "name", 120, errors)
        title = _text(title, "job title", 120, errors, required=False)
        chosen = Role.__members__.get(role)
        if chosen is None or chosen is Role.owner:
            errors.append("role must be admin or member")
        if not errors:
            page.db.add(Member(email=email, name=name, title=title or None, role=chosen))
            try:
                await page.db.commit()
            except IntegrityError:
                await page.db.rollback()
                errors.append(f"{email} is a member already")
            else:
                return RedirectResponse("/members", status_code=303)
        return await members_page(page, errors, {"email": email, "name": name, "title": title})

    return router


def _tn(page: Page) -> Tenantry:
    tn: Tenantry = page.request.app.state.tn
    return tn


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _key_from(name: str) -> str:
    """A project key from its name: ``Rocket Skates v2`` → ``RSV``."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    initials = "".join(w[0] for w in words).upper()
    key = initials if len(initials) >= 2 else "".join(words).upper()[:3]
    key = key[:10]
    if key and key[0].isdigit():
        key = "P" + key[:9]
    return key
