"""TenantMiddleware against a real Starlette app and real PostgreSQL: every resolver, every
refusal, and the tenant context through streaming bodies, background tasks and concurrency."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest

from tenantry import Settings, Tenantry, current_tenant
from tenantry.web import (
    CustomDomainResolver,
    HeaderResolver,
    JwtClaimResolver,
    PathPrefixResolver,
    SubdomainResolver,
    TenantMiddleware,
)
from tests.freezing import frozen
from tests.model_app import Base
from tests.web.edge_app import BASE, client, get, seed, starlette_app, wrap

SECRET = "jwt-secret-for-the-edge-tests-" + "k" * 40


def chain() -> list[Any]:
    return [SubdomainResolver(BASE), CustomDomainResolver(), PathPrefixResolver("/t")]


def token(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, key, algorithm="HS256")


def problem_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    doc: dict[str, Any] = response.json()
    assert doc["status"] == response.status_code
    return doc


def test_subdomain_serves_each_tenant_its_own_rows(tn: Tenantry, make_tenant, run) -> None:
    a, b = make_tenant("web"), make_tenant("web")
    seed(tn, a.slug, "a-1", "a-2")
    seed(tn, b.slug, "b-1")
    app = wrap(tn, starlette_app(tn, []), chain())

    async def main() -> list[Any]:
        return [
            (await get(app, f"http://{a.slug}.{BASE}/projects")).json(),
            (await get(app, f"http://{b.slug.upper()}.{BASE}:8443/projects")).json(),
            (await get(app, f"http://{a.slug}.{BASE}./projects")).json(),
        ]

    assert run(main()) == [
        {"tenant": a.slug, "projects": ["a-1", "a-2"]},
        {"tenant": b.slug, "projects": ["b-1"]},
        {"tenant": a.slug, "projects": ["a-1", "a-2"]},
    ]


def test_path_prefix_moves_into_root_path(tn: Tenantry, make_tenant, run) -> None:
    a = make_tenant("web")
    app = wrap(tn, starlette_app(tn, []), chain())
    response = run(get(app, f"http://{BASE}/t/{a.slug}/who"))
    assert response.status_code == 200
    assert response.json() == {
        "tenant": a.slug,
        "path": f"/t/{a.slug}/who",
        "root_path": f"/t/{a.slug}",
        "url_for": f"http://{BASE}/t/{a.slug}/who",
    }
    # the prefix alone routes nowhere in the app: its 404, not ours
    assert run(get(app, f"http://{BASE}/t/{a.slug}/nothing-here")).headers["content-type"].startswith("text/plain")


def test_header_is_ignored_unless_its_resolver_is_enabled(tn: Tenantry, make_tenant, run) -> None:
    a, b = make_tenant("web"), make_tenant("web")
    plain = wrap(tn, starlette_app(tn, []), chain())
    trusting = wrap(tn, starlette_app(tn, []), [HeaderResolver("X-Tenant"), *chain()])

    async def main() -> list[Any]:
        return [
            await get(plain, f"http://{BASE}/who", headers={"X-Tenant": a.slug}),
            await get(plain, f"http://{b.slug}.{BASE}/who", headers={"X-Tenant": a.slug}),
            await get(trusting, f"http://{BASE}/who", headers={"X-Tenant": a.slug}),
            await get(trusting, f"http://{BASE}/who", headers={"X-Tenant": str(b.id)}),
        ]

    ignored, other_host, by_slug, by_id = run(main())
    assert ignored.status_code == 404 and problem_of(ignored)["type"] == "urn:tenantry:problem:no-tenant"
    assert other_host.json()["tenant"] == b.slug
    assert by_slug.json()["tenant"] == a.slug and by_id.json()["tenant"] == b.slug


def test_conflicting_duplicate_tenant_headers_are_refused(tn: Tenantry, make_tenant, run) -> None:
    """The first value must not win: a proxy or the app may read another one."""
    a, b = make_tenant("web"), make_tenant("web")
    app = wrap(tn, starlette_app(tn, []), [HeaderResolver("X-Tenant"), *chain()])

    async def main() -> list[Any]:
        return [
            await get(app, f"http://{BASE}/who", headers=[("X-Tenant", a.slug), ("X-Tenant", b.slug)]),
            await get(app, f"http://{BASE}/who", headers=[("X-Tenant", f"{a.slug}, {b.slug}")]),
            await get(app, f"http://{BASE}/who", headers=[("X-Tenant", a.slug), ("X-Tenant", a.slug)]),
        ]

    two_lines, folded, identical = run(main())
    for refused in (two_lines, folded):
        assert refused.status_code == 400
        assert problem_of(refused)["type"] == "urn:tenantry:problem:conflicting-tenant-headers"
    assert identical.status_code == 200 and identical.json()["tenant"] == a.slug


def test_jwt_claim(tn: Tenantry, make_tenant, run) -> None:
    a = make_tenant("web")
    app = wrap(tn, starlette_app(tn, []), [JwtClaimResolver(SECRET, algorithms=["HS256"], audience="edge")])

    async def call(bearer: str | None) -> Any:
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        return await get(app, f"http://{BASE}/who", headers=headers)

    async def main() -> list[Any]:
        return [
            await call(token({"tenant": a.slug, "aud": "edge"})),
            await call(token({"tenant": str(a.id), "aud": "edge"})),
            await call(token({"tenant": a.slug, "aud": "edge"}, key="forged-" + "f" * 60)),
            await call(token({"tenant": a.slug, "aud": "edge", "exp": int(time.time()) - 30})),
            await call(token({"tenant": a.slug, "aud": "elsewhere"})),
            await call(
                jwt.encode({"tenant": a.slug, "aud": "edge", "exp": int(time.time()) + 60}, None, algorithm="none")
            ),
            await call(token({"tenant": "no-such-tenant-x", "aud": "edge"})),
            await call(None),
        ]

    ok_slug, ok_id, forged, expired, audience, unsigned, unknown, absent = run(main())
    assert ok_slug.json()["tenant"] == a.slug and ok_id.json()["tenant"] == a.slug
    for refused in (forged, expired, audience, unsigned):
        assert refused.status_code == 401, refused.text
        assert problem_of(refused)["type"] == "urn:tenantry:problem:invalid-token"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "expired" in expired.json()["detail"]
    assert unknown.status_code == 404
    assert absent.status_code == 404


def test_unknown_inactive_and_deleted_tenants(tn: Tenantry, make_tenant, run) -> None:
    suspended, archived, deleted = make_tenant("web"), make_tenant("web"), make_tenant("web")
    tn.tenants.suspend(suspended.slug)
    tn.tenants.archive(archived.slug)
    tn.tenants.delete(deleted.slug)
    app = wrap(tn, starlette_app(tn, []), chain())

    async def main() -> list[Any]:
        return [
            await get(app, f"http://no-such-tenant-here.{BASE}/who"),
            await get(app, f"http://{suspended.slug}.{BASE}/who"),
            await get(app, f"http://{archived.slug}.{BASE}/who"),
            await get(app, f"http://{deleted.slug}.{BASE}/who"),
            await get(app, f"http://{BASE}/t/{uuid.uuid4()}/who"),  # ids only where a key is asked for
            await get(app, f"http://{BASE}/t/public/who"),  # reserved slug
            await get(app, f"http://{BASE}/t/%2e%2e/who"),
            await get(app, "http://10.0.0.1/who"),
            await get(app, f"http://{BASE}/who"),
        ]

    unknown, susp, arch, gone, by_id, reserved, dots, address, nothing = run(main())
    assert problem_of(unknown)["type"] == "urn:tenantry:problem:tenant-not-found" and unknown.status_code == 404
    assert susp.status_code == 403 and "suspended" in problem_of(susp)["detail"]
    assert arch.status_code == 403 and "archived" in problem_of(arch)["detail"]
    assert problem_of(susp)["type"] == "urn:tenantry:problem:tenant-not-active"
    for response in (gone, by_id, reserved, dots, address, nothing):
        assert response.status_code == 404, response.text
        problem_of(response)


def test_browsers_get_a_page(tn: Tenantry, make_tenant, run) -> None:
    t = make_tenant("web")
    tn.tenants.suspend(t.slug)
    app = wrap(tn, starlette_app(tn, []), chain())
    response = run(get(app, f"http://{t.slug}.{BASE}/who", headers={"Accept": "text/html,*/*;q=0.8"}))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "suspended" in response.text and "Traceback" not in response.text


def test_optional_and_exempt(tn: Tenantry, make_tenant, run) -> None:
    a = make_tenant("web")
    optional = wrap(tn, starlette_app(tn, []), chain(), optional=True)
    exempt = wrap(tn, starlette_app(tn, []), chain(), exempt=["/who"])

    async def main() -> list[Any]:
        return [
            await get(optional, f"http://{BASE}/who"),
            await get(optional, f"http://www.{BASE}/who"),
            await get(optional, f"http://{a.slug}.{BASE}/who"),
            await get(optional, f"http://no-such-tenant-here.{BASE}/who"),  # named but unknown: still 404
            await get(exempt, f"http://no-such-tenant-here.{BASE}/who"),
        ]

    none, www, named, unknown, exempted = run(main())
    assert none.json()["tenant"] is None and www.json()["tenant"] is None
    assert named.json()["tenant"] == a.slug
    assert unknown.status_code == 404
    assert exempted.status_code == 200 and exempted.json()["tenant"] is None


def test_signals_naming_two_tenants_are_refused(tn: Tenantry, make_tenant, run) -> None:
    """Subdomain, path prefix, header and token must agree: no order lets them mix."""
    a, b = make_tenant("web"), make_tenant("web")
    app = wrap(
        tn,
        starlette_app(tn, []),
        [*chain(), HeaderResolver(), JwtClaimResolver(SECRET, algorithms=["HS256"])],
    )

    async def main() -> list[Any]:
        return [
            await get(app, f"http://{a.slug}.{BASE}/t/{b.slug}/who"),
            await get(app, f"http://{a.slug}.{BASE}/who", headers={"X-Tenant": b.slug}),
            await get(
                app, f"http://{a.slug}.{BASE}/who", headers={"Authorization": f"Bearer {token({'tenant': b.slug})}"}
            ),
            await get(app, f"http://{BASE}/t/{a.slug}/who", headers={"X-Tenant": str(b.id)}),
            # agreeing signals are served, the prefix still moving into root_path
            await get(app, f"http://{a.slug}.{BASE}/t/{a.slug}/who", headers={"X-Tenant": str(a.id)}),
        ]

    *mixed, agreed = run(main())
    for response in mixed:
        assert response.status_code == 403, response.text
        assert problem_of(response)["type"] == "urn:tenantry:problem:tenant-mismatch"
    assert agreed.json()["tenant"] == a.slug and agreed.json()["root_path"] == f"/t/{a.slug}"


def test_context_never_leaks_between_sequential_requests(tn: Tenantry, make_tenant, run) -> None:
    a, b = make_tenant("web"), make_tenant("web")
    seen: list[tuple[str, str | None]] = []
    app = wrap(tn, starlette_app(tn, seen), chain(), optional=True)

    async def main() -> list[Any]:
        results = []
        async with client(app) as c:
            # httpx's ASGITransport runs the app in this very task: a binding not undone shows here
            for url in (
                f"http://{a.slug}.{BASE}/who",
                f"http://{b.slug}.{BASE}/who",
                f"http://{BASE}/who",
                f"http://{a.slug}.{BASE}/boom",
                f"http://{BASE}/who",
                f"http://no-such-x.{BASE}/who",
                f"http://{BASE}/who",
            ):
                response = await c.get(url)
                results.append(
                    (response.status_code, response.json()["tenant"] if response.status_code == 200 else None)
                )
                assert current_tenant() is None
        return results

    assert run(main()) == [
        (200, a.slug),
        (200, b.slug),
        (200, None),
        (500, None),
        (200, None),
        (404, None),
        (200, None),
    ]
    assert seen == [("boom", a.slug)]


def test_context_never_leaks_inside_an_outer_binding(tn: Tenantry, make_tenant, run) -> None:
    """A request that names no tenant runs with none bound, even if the server's task had one."""
    a, b = make_tenant("web"), make_tenant("web")
    app = wrap(tn, starlette_app(tn, []), chain(), optional=True)

    async def main() -> list[Any]:
        async with tn.tenant(a.slug):
            unnamed = (await get(app, f"http://{BASE}/who")).json()["tenant"]
            named = (await get(app, f"http://{b.slug}.{BASE}/who")).json()["tenant"]
            after = current_tenant()
        return [unnamed, named, None if after is None else after.slug]

    assert run(main()) == [None, b.slug, a.slug]


def test_concurrent_requests_stay_separate(tn: Tenantry, make_tenant, run) -> None:
    tenants = [make_tenant("web") for _ in range(3)]
    for t in tenants:
        seed(tn, t.slug, f"only-{t.slug}")
    # ten requests of each tenant at once: more than the free plan's limits let through
    # (tests/web/test_limits.py tests those); here only the context is under test
    app = wrap(tn, starlette_app(tn, []), chain(), limits=False)

    async def main() -> list[tuple[str, Any, Any]]:
        async with client(app) as c:

            async def one(i: int) -> tuple[str, Any, Any]:
                t = tenants[i % len(tenants)]
                slow = await c.get(f"http://{t.slug}.{BASE}/slow", params={"s": str(0.001 * (i % 7))})
                rows = await c.get(f"http://{BASE}/t/{t.slug}/projects")
                return t.slug, slow.json(), rows.json()

            return await asyncio.gather(*(one(i) for i in range(30)))

    for slug, slow, rows in run(main()):
        assert slow == {"before": slug, "after": slug}
        assert rows == {"tenant": slug, "projects": [f"only-{slug}"]}


def test_streaming_bodies_and_background_tasks_see_their_tenant(tn: Tenantry, make_tenant, run) -> None:
    a, b = make_tenant("web"), make_tenant("web")
    seen: list[tuple[str, str | None]] = []
    app = wrap(tn, starlette_app(tn, seen), chain())

    async def main() -> list[tuple[str, str]]:
        async with client(app) as c:

            async def stream(slug: str) -> tuple[str, str]:
                return slug, (await c.get(f"http://{slug}.{BASE}/stream")).text

            async def background(slug: str) -> tuple[str, str]:
                return slug, (await c.get(f"http://{slug}.{BASE}/background")).text

            return await asyncio.gather(
                *(stream(t.slug) for t in (a, b, a, b)), *(background(t.slug) for t in (a, b, b))
            )

    results = run(main())
    for slug, text in results[:4]:
        assert text == "".join(f"{i}:{slug}\n" for i in range(5))
    assert [text for slug, text in results[4:]] == [a.slug, b.slug, b.slug]
    assert sorted(seen) == sorted([("background", a.slug), ("background", b.slug), ("background", b.slug)])


async def _asgi(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await asyncio.wait_for(app(scope, receive, send), 10)
    return sent


def _ws_scope(host: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "subprotocols": [],
    }


def test_websockets(tn: Tenantry, make_tenant, run) -> None:
    a, s = make_tenant("web"), make_tenant("web")
    tn.tenants.suspend(s.slug)
    app = wrap(tn, starlette_app(tn, []), chain())
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def main() -> list[list[dict[str, Any]]]:
        return [
            await _asgi(app, _ws_scope(f"{a.slug}.{BASE}"), incoming),
            await _asgi(app, _ws_scope(f"{s.slug}.{BASE}"), incoming),
            await _asgi(app, _ws_scope(f"nobody-here.{BASE}"), incoming),
        ]

    served, suspended, unknown = run(main())
    assert [m["type"] for m in served] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert served[1]["text"] == a.slug
    for refused in (suspended, unknown):
        assert refused == [refused[0]] and refused[0]["type"] == "websocket.close" and refused[0]["code"] == 1008


def test_lifespan_passes_through(tn: Tenantry, run) -> None:
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    run(TenantMiddleware(inner, tenantry=tn)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert calls == ["lifespan"]


def test_catalog_unreachable_is_503(run) -> None:
    down = Tenantry(Settings(database_url="host=127.0.0.1 port=1 user=nobody dbname=none", connect_timeout=1.0))
    try:
        app = wrap(down, starlette_app(down, []), chain())
        response = asyncio.run(get(app, f"http://acme.{BASE}/who"))
    finally:
        down.close()
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert problem_of(response)["type"] == "urn:tenantry:problem:database-unavailable"


@pytest.mark.parametrize("via", ["sqlalchemy", "psycopg"])
def test_writes_refused_during_a_move_are_503_with_retry_after(tn: Tenantry, make_tenant, run, via: str) -> None:
    """Outside the framework (whose own 500 page goes out first) and inside it."""
    a, b = make_tenant("web"), make_tenant("web")
    outside = wrap(tn, starlette_app(tn, []), chain())
    inside = starlette_app(tn, [])
    inside.add_middleware(TenantMiddleware, tenantry=tn, resolvers=chain())

    async def post(app: Any, slug: str) -> Any:
        async with client(app) as c:
            return await c.post(f"http://{slug}.{BASE}/write", params={"via": via})

    async def main() -> list[Any]:
        return [await post(outside, a.slug), await post(inside, a.slug), await post(outside, b.slug)]

    with frozen(tn, a):
        *refused, neighbour = run(main())
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert problem_of(response)["type"] == "urn:tenantry:problem:tenant-moving"
    assert neighbour.status_code == 200 and neighbour.json()["tenant"] == b.slug


def test_cache_hits_do_not_leave_the_event_loop(tn: Tenantry, make_tenant, run, monkeypatch) -> None:
    a = make_tenant("web")
    app = wrap(tn, starlette_app(tn, []), chain())
    assert run(get(app, f"http://{a.slug}.{BASE}/who")).status_code == 200
    assert tn.plane._listener is not None and tn.plane._listener.listening.wait(5)
    assert run(get(app, f"http://{a.slug}.{BASE}/who")).status_code == 200  # warm
    hops: list[Any] = []
    real = asyncio.to_thread

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    # a notice of the tenant's creation that arrives late (a loaded machine) drops the warm
    # entry once: then the next window, warm again, must make no hop
    for _window in range(3):
        hops.clear()
        for _ in range(5):
            assert run(get(app, f"http://{a.slug}.{BASE}/who")).json()["tenant"] == a.slug
        if not hops:
            break
    assert hops == []


def test_a_change_elsewhere_reaches_the_edge_within_a_second(scratch, tn: Tenantry, make_tenant, run) -> None:
    edge = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata)
    try:
        t = make_tenant("web")
        app = wrap(edge, starlette_app(edge, []), chain())

        def status() -> int:
            return asyncio.run(get(app, f"http://{t.slug}.{BASE}/who")).status_code

        assert status() == 200
        assert edge.plane._listener is not None and edge.plane._listener.listening.wait(5)
        assert status() == 200  # cached for an hour now
        tn.tenants.suspend(t.slug)  # another process, as far as `edge` knows
        deadline = time.monotonic() + 1.5
        while status() != 403:
            assert time.monotonic() < deadline, "suspension did not reach the edge"
            time.sleep(0.02)
        tn.tenants.resume(t.slug)
        deadline = time.monotonic() + 1.5
        while status() != 200:
            assert time.monotonic() < deadline, "resumption did not reach the edge"
            time.sleep(0.02)
    finally:
        edge.close()


def test_problem_documents_are_json(tn: Tenantry, run) -> None:
    app = wrap(tn, starlette_app(tn, []), chain())
    response = run(get(app, f"http://{BASE}/who"))
    assert json.loads(response.content) == {
        "type": "urn:tenantry:problem:no-tenant",
        "title": "No tenant",
        "status": 404,
        "detail": "this request names no tenant",
        "instance": "/who",
    }
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("host", [f"a.b.{BASE}", f"www.{BASE}", "[::1]:8000", "acme.example.test@evil.com"])
def test_hosts_that_name_no_tenant(tn: Tenantry, run, host: str) -> None:
    app = wrap(tn, starlette_app(tn, []), chain())
    response = run(get(app, f"http://{BASE}/who", headers={"Host": host}))
    assert response.status_code == 404


# -- the pages browsers get ----------------------------------------------------------------------
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_no_tenant_is_a_neutral_page_unless_the_app_gives_its_own(tn: Tenantry, make_tenant, run) -> None:
    """The default page names no tenant; ``no_tenant_page`` (a plain function that reads the
    database in a worker thread, or a coroutine function) answers browsers for no tenant and
    for an unknown one, with 404 kept; API clients get the problem document either way; a page
    that fails gives way to the default."""
    a = make_tenant("web", name="Listed Tenant")
    seen: list[str | None] = []

    def listing(request: Any) -> str:
        seen.append(request.host)
        return "<ul>" + "".join(f"<li>{t.slug}</li>" for t in tn.tenants.list(prefix=a.slug)) + "</ul>"

    async def async_listing(request: Any) -> str:
        return f"<p>async page for {request.path}</p>"

    def broken(request: Any) -> str:
        raise RuntimeError("the app's page fails")

    default = wrap(tn, starlette_app(tn, []), chain())
    listed = wrap(tn, starlette_app(tn, []), chain(), no_tenant_page=listing)
    in_loop = wrap(tn, starlette_app(tn, []), chain(), no_tenant_page=async_listing)
    failing = wrap(tn, starlette_app(tn, []), chain(), no_tenant_page=broken)

    async def main() -> list[Any]:
        return [
            await get(default, f"http://{BASE}/who", headers=HTML),
            await get(default, f"http://no-such-tenant-here.{BASE}/who", headers=HTML),
            await get(listed, f"http://{BASE}/who", headers=HTML),
            await get(listed, f"http://no-such-tenant-here.{BASE}/who", headers=HTML),
            await get(listed, f"http://{BASE}/who"),  # an API client
            await get(in_loop, f"http://{BASE}/who", headers=HTML),
            await get(failing, f"http://{BASE}/who", headers=HTML),
            await get(listed, f"http://{a.slug}.{BASE}/who", headers=HTML),  # a tenant: no page at all
        ]

    plain, unknown, page, unknown_page, api, async_page, fallback, served = run(main())
    for response in (plain, unknown, page, unknown_page, async_page, fallback):
        assert response.status_code == 404 and response.headers["content-type"] == "text/html; charset=utf-8"
        assert int(response.headers["content-length"]) == len(response.content)
    for neutral in (plain, unknown, fallback):
        assert "There is no site at this address" in neutral.text
        assert a.slug not in neutral.text and "no-such-tenant-here" not in neutral.text and "Listed" not in neutral.text
    assert f"<li>{a.slug}</li>" in page.text and f"<li>{a.slug}</li>" in unknown_page.text
    assert seen == [BASE, f"no-such-tenant-here.{BASE}"]
    assert problem_of(api)["type"] == "urn:tenantry:problem:no-tenant" and a.slug not in api.text
    assert "async page for /who" in async_page.text
    assert served.status_code == 200 and served.json()["tenant"] == a.slug


def test_an_inactive_tenants_page_wears_its_brand_and_hides_its_slug(tn: Tenantry, make_tenant, run) -> None:
    from tests.branding.images import png

    branded, plain, archived = (make_tenant("web", name=n) for n in ("Hooli Corp", "Pied Piper", "Raviga"))
    tn.branding.set(branded.slug, {"product_name": "HooliChat", "colors": {"primary": "#7b2d8b"}}, logo=png(24, 24))
    tn.tenants.suspend(branded.slug)
    tn.tenants.suspend(plain.slug)
    tn.tenants.archive(archived.slug)
    app = wrap(tn, starlette_app(tn, []), chain())

    async def main() -> list[Any]:
        return [
            await get(app, f"http://{branded.slug}.{BASE}/who", headers=HTML),
            await get(app, f"http://{plain.slug}.{BASE}/who", headers=HTML),
            await get(app, f"http://{archived.slug}.{BASE}/who", headers=HTML),
            await get(app, f"http://{branded.slug}.{BASE}/who"),  # an API client
        ]

    hooli, piper, raviga, api = run(main())
    for page in (hooli, piper, raviga):
        assert page.status_code == 403 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert "retry-after" not in page.headers
        assert "contact your administrator" in page.text
    assert "<h1>HooliChat is unavailable</h1>" in hooli.text and "HooliChat is suspended" in hooli.text
    assert "--brand-primary: #7b2d8b;" in hooli.text and 'src="data:image/png;base64,' in hooli.text
    assert "<h1>Pied Piper is unavailable</h1>" in piper.text and "--brand-primary: #3b5bdb;" in piper.text
    assert "Raviga has been closed" in raviga.text
    for page, tenant in ((hooli, branded), (piper, plain), (raviga, archived)):
        assert tenant.slug not in page.text and str(tenant.id) not in page.text
    # API clients: the problem document as before
    assert api.status_code == 403 and problem_of(api)["type"] == "urn:tenantry:problem:tenant-not-active"
    assert "suspended" in problem_of(api)["detail"]
