"""The projects: ``/projects`` (list, new project), ``/projects/<id>`` (its tasks, the new-task
form) and ``/projects/<id>/tasks.csv`` (its tasks as a CSV file, for tenants with the
``csv-export`` flag on).

Another tenant's project id is a 404: row-level security hides the row, so there is no
ownership check to forget.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from examples.tracker.models import Priority, Project, Task, TaskStatus
from examples.tracker.pages.common import FormPage, Page, PageDep, get_project, members_by_id, text_field
from tenantry.contrib.webhooks import aqueue

__all__ = ["project_page", "router"]

router = APIRouter()

_KEY = re.compile(r"[A-Z][A-Z0-9]{1,9}")


async def projects_page(
    page: Page, errors: list[str] | None = None, form: dict[str, str] | None = None
) -> HTMLResponse:
    """The list of projects with their task counts, and the new-project form."""
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
        "projects.html",
        422 if errors else 200,
        rows=rows,
        members=await members_by_id(page.db),
        errors=errors or [],
        form=form or {},
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
    name = text_field(name, "name", 200, errors)
    description = text_field(description, "description", 5000, errors, required=False)
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
                await aqueue(
                    page.tn,
                    page.db,
                    "project.created",
                    {
                        "id": project.id,
                        "key": key,
                        "name": name,
                        "owner": page.user.email,
                    },
                )
            await page.db.commit()
            return RedirectResponse(f"/projects/{project.id}", status_code=303)
    return await projects_page(page, errors, {"name": name, "key": key, "description": description})


async def project_page(page: Page, project_id: int, errors: list[str] | None = None) -> HTMLResponse:
    """A project's page: its tasks and the new-task form (with ``errors``, the form's)."""
    project = await get_project(page.db, project_id)
    tasks = (
        await page.db.scalars(
            sa.select(Task).where(Task.project_id == project.id).order_by(Task.status, Task.priority.desc(), Task.id)
        )
    ).all()
    return page.render(
        "project.html",
        422 if errors else 200,
        project=project,
        tasks=tasks,
        members=await members_by_id(page.db),
        priorities=list(Priority),
        statuses=list(TaskStatus),
        errors=errors or [],
    )


@router.get("/projects/{project_id}", response_class=HTMLResponse)
async def project_detail(page: PageDep, project_id: int) -> HTMLResponse:
    return await project_page(page, project_id)


@router.get("/projects/{project_id}/tasks.csv")
async def export_tasks(page: PageDep, project_id: int) -> Response:
    if not page.org.csv_export:  # the feature flag is off for this tenant
        raise HTTPException(404, "no such page")
    project = await get_project(page.db, project_id)
    members = await members_by_id(page.db)
    tasks = (await page.db.scalars(sa.select(Task).where(Task.project_id == project.id).order_by(Task.id))).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", "title", "status", "priority", "assignee", "due"])
    for task in tasks:
        assignee = members[task.assignee_id].email if task.assignee_id in members else ""
        writer.writerow(
            [
                f"{project.key}-{task.id}",
                _cell(task.title),
                task.status.value,
                task.priority.value,
                assignee,
                task.due_on or "",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{project.key}-tasks.csv"',
            "cache-control": "private, no-store",
        },
    )


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
