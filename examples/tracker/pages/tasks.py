"""The tasks: ``POST /projects/<id>/tasks`` (a new task in a project) and ``/tasks/<id>`` (the
task, its comments, a new comment, its status)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from examples.tracker.models import Comment, Member, Priority, Task, TaskStatus
from examples.tracker.pages.common import (
    FormPage,
    Page,
    PageDep,
    by_id,
    get_project,
    get_task,
    members_by_id,
    text_field,
)
from examples.tracker.pages.projects import project_page
from tenantry.contrib.webhooks import aqueue

__all__ = ["router"]

router = APIRouter()


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
    project = await get_project(page.db, project_id)
    errors: list[str] = []
    title = text_field(title, "title", 200, errors)
    description = text_field(description, "description", 5000, errors, required=False)
    chosen_priority = Priority.__members__.get(priority)
    if chosen_priority is None:
        errors.append("unknown priority")
    assignee_id: int | None = None
    if assignee:
        member = await by_id(page.db, Member, int(assignee)) if assignee.isdigit() else None
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
        project_id=project.id,
        title=title,
        description=description,
        priority=chosen_priority,
        assignee_id=assignee_id,
        due_on=due,
    )
    page.db.add(task)
    await page.db.flush()
    if page.org.webhooks:  # queued in this transaction: sent if and only if the task is saved
        await aqueue(
            page.tn,
            page.db,
            "task.created",
            {
                "id": task.id,
                "project": project.key,
                "title": title,
                "priority": task.priority.value,
                "due_on": due,
                "created_by": page.user.email,
            },
        )
    await page.db.commit()
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)


async def task_page(page: Page, task_id: int, errors: list[str] | None = None) -> HTMLResponse:
    """A task's page: the task, its comments, the comment and status forms."""
    task = await get_task(page.db, task_id)
    project = await get_project(page.db, task.project_id)
    comments = (
        await page.db.scalars(
            sa.select(Comment).where(Comment.task_id == task.id).order_by(Comment.created_at, Comment.id)
        )
    ).all()
    return page.render(
        "task.html",
        422 if errors else 200,
        task=task,
        project=project,
        comments=comments,
        members=await members_by_id(page.db),
        statuses=list(TaskStatus),
        errors=errors or [],
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_detail(page: PageDep, task_id: int) -> HTMLResponse:
    return await task_page(page, task_id)


@router.post("/tasks/{task_id}/comments")
async def add_comment(page: FormPage, task_id: int, body: Annotated[str, Form()] = "") -> Response:
    task = await get_task(page.db, task_id)
    errors: list[str] = []
    body = text_field(body, "comment", 5000, errors)
    if errors:
        return await task_page(page, task.id, errors)
    page.db.add(Comment(task_id=task.id, author_id=page.user.id, body=body))
    await page.db.commit()
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)


@router.post("/tasks/{task_id}/status")
async def set_status(page: FormPage, task_id: int, status: Annotated[str, Form()] = "") -> Response:
    task = await get_task(page.db, task_id)
    chosen = TaskStatus.__members__.get(status)
    if chosen is None:
        return await task_page(page, task.id, ["unknown status"])
    task.status = chosen
    await page.db.commit()
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)
