"""RFC 9457 problem documents: shape, content type, extensions, errors, the HTML page."""

from __future__ import annotations

import json

import pytest

from tenantry import TenantNotActive, TenantNotFound
from tenantry.web.problems import (
    PROBLEM_JSON,
    problem,
    problem_from_error,
    problem_page,
    problem_type,
    wants_html,
)


def test_problem_document() -> None:
    status, headers, body = problem(
        409, "Conflict", "slug taken", type_=problem_type("tenant-exists"), instance="/tenants/acme", slug="acme"
    )
    assert status == 409
    named = dict(headers)
    assert named[b"content-type"] == PROBLEM_JSON.encode()
    assert int(named[b"content-length"]) == len(body)
    assert json.loads(body) == {
        "type": "urn:tenantry:problem:tenant-exists",
        "title": "Conflict",
        "status": 409,
        "detail": "slug taken",
        "instance": "/tenants/acme",
        "slug": "acme",
    }


def test_defaults_and_extra_headers() -> None:
    status, headers, body = problem(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    assert json.loads(body) == {"type": "about:blank", "title": "Unauthorized", "status": 401}
    assert (b"www-authenticate", b"Bearer") in headers


def test_extensions_cannot_shadow_standard_members() -> None:
    with pytest.raises(ValueError, match="type"):
        problem(400, "Bad", type="x")


def test_from_error() -> None:
    status, _, body = problem_from_error(TenantNotActive("tenant 'acme' is suspended, not active"))
    assert status == 403
    doc = json.loads(body)
    assert doc["type"] == "urn:tenantry:problem:tenant-not-active"
    assert doc["title"] == "Forbidden" and "suspended" in doc["detail"]
    assert json.loads(problem_from_error(TenantNotFound("x"))[2])["status"] == 404


def test_html_page_escapes_and_keeps_headers() -> None:
    status, headers, body = problem_page(
        *problem(401, "Nope <b>", "<script>x</script>", headers={"www-authenticate": "Bearer"})
    )
    assert status == 401
    named = dict(headers)
    assert named[b"content-type"].startswith(b"text/html")
    assert named[b"www-authenticate"] == b"Bearer"
    assert int(named[b"content-length"]) == len(body)
    assert b"<script>" not in body and b"&lt;script&gt;" in body


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json", False),
        ("application/problem+json, text/html", False),
        ("*/*", False),
        (None, False),
    ],
)
def test_wants_html(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html
