"""The tenant's members: ``/members`` (who they are, their open tasks; owners and admins add
members there)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from examples.tracker.models import Member, Role, Task, TaskStatus
from examples.tracker.pages.common import FormPage, Page, PageDep, email_field, text_field

__all__ = ["router"]

router = APIRouter()


async def members_page(page: Page, errors: list[str] | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
    """The members with their open tasks, and (for owners and admins) the form to add one."""
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
        "members.html",
        422 if errors else 200,
        rows=rows,
        roles=list(Role),
        errors=errors or [],
        form=form or {},
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
    email = email_field(email, errors)
    name = text_field(name, "name", 120, errors)
    title = text_field(title, "job title", 120, errors, required=False)
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
