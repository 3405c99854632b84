"""The tracker's pages: one module, and one ``APIRouter``, per page area.

==============  ================================================================
``auth``        ``/login``, ``/first-account``, ``/logout``
``dashboard``   ``/`` and ``/favicon.ico``
``projects``    ``/projects``, ``/projects/<id>``, ``/projects/<id>/tasks.csv``
``tasks``       ``POST /projects/<id>/tasks``, ``/tasks/<id>`` and its forms
``members``     ``/members``
``webhooks``    ``/webhooks``
``common``      what they share: the ``Page`` dependency, queries, form fields
==============  ================================================================

:data:`router` gathers them all for :func:`examples.tracker.app.create_app`.
"""

from __future__ import annotations

from fastapi import APIRouter

from examples.tracker.pages import auth, dashboard, members, projects, tasks, webhooks

__all__ = ["router"]

router = APIRouter()
router.include_router(auth.router)
router.include_router(dashboard.router)
router.include_router(projects.router)
router.include_router(tasks.router)
router.include_router(members.router)
router.include_router(webhooks.router)
