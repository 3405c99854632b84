"""The home page, ``/`` (counts, my open tasks, recent comments), and ``/favicon.ico``."""

from __future__ import annotations

import html
from datetime import date

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from examples.tracker.models import Comment, Member, Project, Task, TaskStatus
from examples.tracker.pages.common import PageDep, count, tenantry_of

__all__ = ["router"]

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def dashboard(page: PageDep) -> HTMLResponse:
    db = page.db
    counts = {
        "projects": await count(db, Project),
        "open_tasks": await count(db, Task, Task.status != TaskStatus.done),
        "done_tasks": await count(db, Task, Task.status == TaskStatus.done),
        "members": await count(db, Member),
        "comments": await count(db, Comment),
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


@router.get("/favicon.ico", include_in_schema=False)
async def favicon(request: Request) -> Response:
    """The tenant's brand icon, or one drawn from its colours and initial (browsers ask
    for this path whatever the page links)."""
    tn = tenantry_of(request)
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
