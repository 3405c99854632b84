"""What routes receive: the Tenantry and job runner of the app, and the errors they document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from tenantry.api.schemas import Problem
from tenantry.app import Tenantry
from tenantry.problems import PROBLEM_JSON
from tenantry.services.jobs import JobRunner

__all__ = ["Runner", "TN", "problems"]


def _tenantry(request: Request) -> Tenantry:
    tn = request.app.state.tenantry
    assert isinstance(tn, Tenantry)
    return tn


def _runner(request: Request) -> JobRunner:
    runner = request.app.state.jobs
    assert isinstance(runner, JobRunner)
    return runner


TN = Annotated[Tenantry, Depends(_tenantry)]
Runner = Annotated[JobRunner, Depends(_runner)]

_SAID = {
    400: "The body is not JSON (or not in UTF-8).",
    401: "No API token, or one that is unknown, expired or revoked.",
    403: "The token lacks the scope this needs.",
    404: "No such resource.",
    409: "Conflicts with the resource's state (lifecycle, a running job, a name taken).",
    413: "The body is larger than this resource takes.",
    415: "The body's content type is not one this resource takes.",
    422: "The request is not valid (fields, cursor, slug, plan or cell rules, or what the resource's own validation refuses).",
    500: "An unexpected error, or a server configuration error.",
    503: "PostgreSQL is unreachable, or the catalog needs `tenantry init`.",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route may answer (401, 403, 422, 500 and
    503 always)."""
    return {
        code: {"model": Problem, "description": _SAID[code], "content": {PROBLEM_JSON: {}}}
        for code in sorted({401, 403, 422, 500, 503, *codes})
    }
