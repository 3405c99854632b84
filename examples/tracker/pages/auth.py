"""Signing in and out: ``/login``, ``/first-account`` and ``/logout``.

Sign-in is deliberately small: pick a member of this tenant by e-mail (a demo has no
passwords). A tenant with no members yet (made with ``tenantry tenants create``) offers to
create its first account instead, whose member becomes the tenant's owner; once it has one,
``POST /first-account`` is refused with 409.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from examples.tracker.models import Member, Role
from examples.tracker.pages.common import Db, FormPage, Org, OrgDep, count, email_field, templates, text_field
from examples.tracker.sessions import end_session, start_session
from examples.tracker.tenancy import request_tenant

__all__ = ["router"]

router = APIRouter()

#: advisory lock namespace of the first-account check (the second key: the tenant)
_FIRST_ACCOUNT_LOCK = 0x7472


def login_page(
    request: Request,
    org: Org,
    *,
    first: bool,
    status_code: int = 200,
    errors: list[str] | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    """The sign-in page; with ``first``, the form that creates the tenant's first account."""
    return templates(request).TemplateResponse(
        request,
        "login.html",
        {"org": org, "user": None, "first": first, "errors": errors or [], "form": form or {}},
        status_code=status_code,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, db: Db, org: OrgDep) -> HTMLResponse:
    # a tenant with nobody in it yet (made with `tenantry tenants create`) offers its first account
    return login_page(request, org, first=await count(db, Member) == 0)


@router.post("/login")
async def login(request: Request, db: Db, org: OrgDep, email: Annotated[str, Form()] = "") -> Response:
    member = await db.scalar(sa.select(Member).where(Member.email == email.strip().lower()))
    if member is None:
        first = await count(db, Member) == 0
        return login_page(
            request, org, first=first, status_code=401, errors=[f"{org.name} has no member with that e-mail"]
        )
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, member)
    return response


@router.post("/first-account")
async def first_account(
    request: Request,
    db: Db,
    org: OrgDep,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """The tenant's first member, who becomes its owner; refused (409) once it has one."""
    errors: list[str] = []
    email = email_field(email, errors)
    name = text_field(name, "name", 120, errors)
    if errors:
        return login_page(request, org, first=True, status_code=422, errors=errors, form={"email": email, "name": name})
    # check and insert in one transaction, under a lock of this tenant's: of two requests
    # racing to be first, the second waits for the first to commit, then finds a member
    await db.execute(
        sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:tenant))"),
        {
            "space": _FIRST_ACCOUNT_LOCK,
            "tenant": str(request_tenant().id),
        },
    )
    if await count(db, Member) > 0:
        await db.rollback()
        return login_page(
            request,
            org,
            first=False,
            status_code=409,
            errors=[
                f"{org.name} has its first account already: sign in, or ask its owner to add you",
            ],
        )
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
