"""RFC 9457 problem documents (:mod:`tenantry.problems`): their shape, every tenantry error's
document, the same document from the admin API and from the web edge, and no other module
building one by hand."""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import tenantry
from tenantry import (
    AuthenticationFailed,
    ConfigInvalid,
    DatabaseUnavailable,
    LowContrast,
    PermissionDenied,
    Settings,
    TablesDiffer,
    Tenantry,
    TenantryError,
)
from tenantry.api import create_admin_app
from tenantry.problems import (
    PROBLEM_JSON,
    internal_error,
    invalid_request,
    problem,
    problem_from_error,
    problem_page,
    problem_type,
    send_problem,
    wants_html,
)
from tenantry.web import RequestInfo, TenantMiddleware
from tenantry.web.middleware import SERVER_SIDE_DETAIL

SRC = Path(tenantry.__file__).parent


def test_problem_document() -> None:
    p = problem(409, "slug taken", code="tenant-exists", instance="/tenants/acme", slug="acme")
    assert p.body() == json.dumps(p.document(), separators=(",", ":")).encode()
    assert p.document() == {
        "type": "urn:tenantry:problem:tenant-exists",
        "title": "Tenant exists",
        "status": 409,
        "detail": "slug taken",
        "instance": "/tenants/acme",
        "slug": "acme",
    }
    named = dict(p.asgi_headers())
    assert named[b"content-type"] == PROBLEM_JSON.encode() and int(named[b"content-length"]) == len(p.body())


def test_defaults_and_extra_headers() -> None:
    p = problem(401, headers={"WWW-Authenticate": "Bearer"})
    assert p.document() == {"type": "about:blank", "title": "Unauthorized", "status": 401}
    assert (b"www-authenticate", b"Bearer") in p.asgi_headers()
    assert problem_type("TenantNotFound") == problem_type("tenant-not-found") == "urn:tenantry:problem:tenant-not-found"


def test_extensions_cannot_shadow_standard_members() -> None:
    with pytest.raises(ValueError, match="type"):
        problem(400, type="x")


def test_what_errors_add() -> None:
    denied = problem_from_error(PermissionDenied("lacks tenants:read", scope="tenants:read"))
    assert denied.document()["scope"] == "tenants:read" and denied.title == "Permission denied"
    assert (
        denied.headers["WWW-Authenticate"]
        == 'Bearer realm="tenantry", error="insufficient_scope", scope="tenants:read"'
    )
    bare = problem_from_error(AuthenticationFailed('no "token"'), bare_challenge=True)
    assert bare.headers == {"WWW-Authenticate": 'Bearer realm="tenantry"'}
    said = problem_from_error(AuthenticationFailed('a "bad" token'))
    assert said.headers["WWW-Authenticate"].endswith("error_description=\"a 'bad' token\"")
    pairs = ["text on the primary colour: on_primary #ffffff on primary #ffff00, 1.07:1"]
    low = problem_from_error(LowContrast("colours below WCAG AA", pairs, hint="pass allow_low_contrast"))
    assert low.status == 422 and low.document()["problems"] == pairs and "allow_low_contrast" in str(low.detail)
    assert problem_from_error(ConfigInvalid("no", ["a.b: bad"])).document()["problems"] == ["a.b: bad"]
    assert problem_from_error(TablesDiffer("no", ["t: no such table here"])).document()["problems"]
    down = problem_from_error(DatabaseUnavailable("cannot reach 10.0.0.5"), detail="please try again shortly")
    assert down.headers == {"Retry-After": "1"} and down.detail == "please try again shortly"


def test_invalid_request_and_internal_error() -> None:
    p = invalid_request([{"loc": ["body", "slug"], "msg": "Field required", "type": "missing"}])
    assert (p.status, p.type, p.title, p.detail) == (
        422,
        "urn:tenantry:problem:invalid-request",
        "Invalid request",
        "the request is not valid: body.slug",
    )
    assert p.document()["errors"] == [{"loc": ["body", "slug"], "msg": "Field required", "type": "missing"}]
    assert internal_error().document() == {
        "type": "urn:tenantry:problem:internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "an unexpected error occurred; the server log has the details",
    }


def test_html_page_escapes() -> None:
    page = problem_page(problem(401, "<script>x</script>", title="Nope <b>"))
    assert "<script>" not in page and "&lt;script&gt;" in page and "Nope &lt;b&gt;" in page


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


def test_send_problem() -> None:
    p = problem(404, "gone", code="tenant-not-found", headers={"Retry-After": "1"})

    def sent(scope: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            messages.append(message)

        asyncio.run(send_problem({"headers": [], "path": "/x", **scope}, send, p, **options))
        return messages

    start, body = sent({"type": "http", "method": "GET"})
    assert start["status"] == 404 and (b"retry-after", b"1") in start["headers"]
    assert json.loads(body["body"])["instance"] == "/x"
    head = sent({"type": "http", "method": "HEAD"})
    assert head[1]["body"] == b"" and dict(head[0]["headers"])[b"content-length"] == str(len(body["body"])).encode()
    browser = {"type": "http", "method": "GET", "headers": [(b"accept", b"text/html")]}
    assert sent(browser)[1]["body"] == body["body"]  # no page unless asked for
    start, page = sent(browser, html_page=True)
    assert dict(start["headers"])[b"content-type"].startswith(b"text/html") and b"Tenant not found" in page["body"]
    assert (b"retry-after", b"1") in start["headers"]
    assert sent({"type": "websocket"}) == [{"type": "websocket.close", "code": 1008, "reason": "Tenant not found"}]


# -- one document per error, on every surface ----------------------------------------------


def _errors() -> list[type[TenantryError]]:
    found: list[type[TenantryError]] = []
    todo: list[type[TenantryError]] = [TenantryError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("tenantry.") and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


ERRORS = {cls.__name__: cls for cls in _errors()}


def _sample(cls: type[TenantryError]) -> TenantryError:
    if issubclass(cls, PermissionDenied):
        return cls("token 'ci' lacks the scope 'tenants:read'", scope="tenants:read")
    if issubclass(cls, LowContrast):
        return cls("colours below WCAG AA", ["text on the primary colour: #fff on #ff0, 1.07:1"], hint="override it")
    if issubclass(cls, ConfigInvalid | TablesDiffer):
        return cls(f"{cls.__name__} happened", ["limits.max_projects: Input should be a valid integer"])
    return cls(f"{cls.__name__} happened")


class _Raising:
    """A resolver that fails the way the named error says (``/resolve/<error>``)."""

    name = "raising"

    def resolve(self, request: RequestInfo) -> None:
        if request.path.startswith("/resolve/"):
            raise _sample(ERRORS[request.path.removeprefix("/resolve/")])


async def _app_raising(scope: Any, receive: Any, send: Any) -> None:
    raise _sample(ERRORS[scope["path"].removeprefix("/serve/")])


@pytest.fixture(scope="module")
def surfaces() -> Iterator[tuple[FastAPI, TenantMiddleware]]:
    """The admin API and the web edge over a Tenantry that never connects: errors only."""
    with Tenantry(Settings(database_url="host=127.0.0.1 port=1 user=nobody dbname=x", connect_timeout=1)) as down:
        api = create_admin_app(down)

        @api.get("/raise/{name}")
        def raising(name: str) -> None:
            raise _sample(ERRORS[name])

        yield api, TenantMiddleware(_app_raising, tenantry=down, resolvers=[_Raising()], optional=True)


def _call(app: Any, path: str) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://example.test") as client:
            return await client.get(path)

    return asyncio.run(main())


def _document(response: httpx.Response, path: str) -> tuple[dict[str, Any], dict[str, str]]:
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    document = response.json()
    assert document.pop("instance") == path
    said = {name: response.headers[name] for name in ("retry-after", "www-authenticate") if name in response.headers}
    return document, said


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_the_api_and_the_edge_answer_an_error_alike(surfaces: tuple[FastAPI, TenantMiddleware], name: str) -> None:
    api, edge = surfaces
    error = _sample(ERRORS[name])
    expected = problem_from_error(error)
    from_api = _document(_call(api, f"/raise/{name}"), f"/raise/{name}")
    from_edge = _document(_call(edge, f"/resolve/{name}"), f"/resolve/{name}")
    if error.http_status >= 500:
        # the edge answers end users: a server-side failure's message (a host, a socket path)
        # stays in the log; everything else is the admin API's document
        edge_document = dict(from_edge[0])
        assert edge_document.pop("detail") == SERVER_SIDE_DETAIL
        assert error.message not in json.dumps(from_edge[0])
        assert edge_document == {k: v for k, v in from_api[0].items() if k != "detail"}
        assert from_edge[1] == from_api[1]
    else:
        assert from_api == from_edge
    document, headers = from_api
    assert document == expected.document()
    assert (document["type"], document["title"], document["status"]) == (
        problem_type(name),
        expected.title,
        error.http_status,
    )
    assert document["detail"] == error.message
    assert headers.get("retry-after") == (None if error.retry_after is None else str(error.retry_after))
    if error.retry_after is not None:  # raised by the app behind the edge, it is answered the same
        assert _document(_call(edge, f"/serve/{name}"), f"/serve/{name}") == from_edge


def test_titles_are_the_errors_names_in_words() -> None:
    titles = {name: problem_from_error(_sample(cls)).title for name, cls in ERRORS.items()}
    assert titles["TenantNotFound"] == "Tenant not found"
    assert titles["DatabaseUnavailable"] == "Database unavailable"
    assert titles["PermissionDenied"] == "Permission denied"
    assert len(set(titles.values())) == len(titles)  # one title per error, no two alike


# -- nobody else builds one ----------------------------------------------------------------


def _hand_made(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module spells out a problem document: the media type, a problem type URI or
    ``about:blank``, or a dict with the members ``title`` and ``status``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if text.strip().lower().startswith(("application/problem+json", "urn:tenantry:problem:", "about:blank")):
                found.append((node.lineno, repr(node.value)[:60]))
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if {"title", "status"} <= keys:
                found.append((node.lineno, "a dict with title and status"))
    return found


def test_no_module_but_the_one_builds_problem_documents() -> None:
    one = SRC / "problems.py"
    assert _hand_made(ast.parse(one.read_text())), "the check no longer sees what it looks for"
    offenders = {
        str(path.relative_to(SRC)): found
        for path in sorted(SRC.rglob("*.py"))
        if path != one and (found := _hand_made(ast.parse(path.read_text())))
    }
    assert offenders == {}
