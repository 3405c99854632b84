"""The example tracker over HTTP (httpx against the ASGI app): tenants on three tiers, each
site shows only its own data, forms write into the right tenant, and hostile requests (ids of
another tenant, cookies carried across hosts, forged sessions, unknown hosts) get nothing; and
the same app run by a data-plane process (runtime and reader credentials only)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.orm import Session

from examples.tracker.app import SESSION_COOKIE, create_app, site_directory
from examples.tracker.models import Base, Comment, Member, Project, Role, Task
from examples.tracker.seed import DATASETS, seed
from tenantry import ControlPlaneOnly, Tenantry, Verdict, current_tenant
from tenantry.core.secrets import new_key
from tests.examples.support import LOGIN, TENANTS, Tracker, csrf_of
from tests.freezing import frozen

ROOT = Path(__file__).resolve().parents[2]
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _names(slug: str) -> set[str]:
    return {p.name for p in DATASETS[slug].projects}


def _rows(tracker: Tracker, slug: str, model: type, *where: object) -> list:
    with tracker.tn.tenant(slug), Session(tracker.tn.engine()) as session:
        return list(session.scalars(sa.select(model).where(*where)).all())


def _new_project(tracker: Tracker, slug: str, name: str) -> int:
    with tracker.tn.tenant(slug), Session(tracker.tn.engine()) as session, session.begin():
        project = Project(key="X" + uuid.uuid4().hex[:6].upper(), name=name)
        session.add(project)
        session.flush()
        return project.id


# -- what each site shows ---------------------------------------------------------------------
def test_each_site_shows_its_own_name_and_data_only(tracker: Tracker) -> None:
    async def main() -> None:
        for slug in TENANTS:
            others = set().union(*(_names(o) for o in TENANTS if o != slug))
            async with tracker.signed_in(slug) as client:
                dashboard = await client.get("/")
                assert dashboard.status_code == 200
                assert f'<h1 id="org-name">{slug.title()} Corporation</h1>' in dashboard.text
                assert f'id="count-projects">{len(DATASETS[slug].projects)}<' in dashboard.text
                assert f'id="count-members">{len(DATASETS[slug].members)}<' in dashboard.text
                projects = (await client.get("/projects")).text
                shown = set(re.findall(r'class="project-name" href="/projects/\d+">([^<]+)<', projects))
                assert _names(slug) <= shown
                assert not shown & others, f"{slug} shows another tenant's projects: {shown & others}"
                members = (await client.get("/members")).text
                emails = set(re.findall(r'class="member-email">([^<]+)<', members))
                assert emails == {m[0] for m in DATASETS[slug].members}

    tracker.runner.run(main())


def test_every_page_of_every_project_and_task_stays_in_its_tenant(tracker: Tracker) -> None:
    async def main() -> None:
        for slug in TENANTS:
            foreign = {m[1] for o in TENANTS if o != slug for m in DATASETS[o].members}
            async with tracker.signed_in(slug) as client:
                for project in _rows(tracker, slug, Project):
                    page = await client.get(f"/projects/{project.id}")
                    assert page.status_code == 200 and escape(project.name) in page.text
                for task in _rows(tracker, slug, Task):
                    page = await client.get(f"/tasks/{task.id}")
                    assert page.status_code == 200 and escape(task.title) in page.text
                    assert not any(escape(name) in page.text for name in foreign)

    tracker.runner.run(main())


def test_the_header_names_the_product_once_and_favicon_ico_answers(tracker: Tracker) -> None:
    """With no brand set, the product name is the tenant's name (not "... tracker" after it),
    and ``/favicon.ico`` draws the tenant's initial in its colours rather than a 404."""

    async def main() -> tuple[str, httpx.Response]:
        async with tracker.signed_in("initech") as client:
            return (await client.get("/")).text, await client.get("/favicon.ico")

    page, icon = tracker.runner.run(main())
    assert '<span id="brand-name">Initech Corporation</span></a>' in page and "<small>" not in page
    assert '<link rel="icon" href="/favicon.ico">' in page
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert '<rect width="32" height="32" rx="7" fill="#3b5bdb"/>' in icon.text and ">I</text>" in icon.text


def test_tiers_are_what_the_dashboard_says(tracker: Tracker) -> None:
    async def main() -> None:
        for slug, tier in (("acme", "pooled"), ("globex", "schema"), ("initech", "database")):
            async with tracker.signed_in(slug) as client:
                assert f"{tier} isolation" in (await client.get("/")).text
            assert tracker.tn.tenants.placement(slug).isolation.value == tier  # type: ignore[union-attr]

    tracker.runner.run(main())


# -- forms write into the tenant of the site ------------------------------------------------
def test_forms_create_rows_in_the_right_tenant(tracker: Tracker) -> None:
    name = f"Quarterly Review {uuid.uuid4().hex[:6]}"

    async def main() -> None:
        async with tracker.signed_in("globex") as client:
            csrf = csrf_of((await client.get("/projects")).text)
            created = await client.post("/projects", data={"csrf": csrf, "name": name, "description": "Q3 numbers"})
            assert created.status_code == 303
            project_url = created.headers["location"]
            page = await client.get(project_url)
            assert name in page.text
            hank = _rows(tracker, "globex", Member, Member.email == "hank@globex.example")[0]
            task = await client.post(
                f"{project_url}/tasks",
                data={
                    "csrf": csrf,
                    "title": "Collect the numbers",
                    "priority": "high",
                    "assignee": str(hank.id),
                    "due_on": "2030-01-31",
                },
            )
            assert task.status_code == 303
            task_url = task.headers["location"]
            comment = await client.post(f"{task_url}/comments", data={"csrf": csrf, "body": "On it."})
            assert comment.status_code == 303
            status = await client.post(f"{task_url}/status", data={"csrf": csrf, "status": "doing"})
            assert status.status_code == 303
            shown = (await client.get(task_url)).text
            assert "On it." in shown and "s-doing" in shown and "Hank Scorpio" in shown
        async with tracker.signed_in("acme") as client:
            assert name not in (await client.get("/projects")).text

    tracker.runner.run(main())
    [project] = _rows(tracker, "globex", Project, Project.name == name)
    assert project.key.startswith("QR")  # initials of the name
    [task] = _rows(tracker, "globex", Task, Task.project_id == project.id)
    assert task.title == "Collect the numbers" and task.priority.value == "high"
    assert [c.body for c in _rows(tracker, "globex", Comment, Comment.task_id == task.id)] == ["On it."]
    for other in ("acme", "initech"):
        assert not _rows(tracker, other, Project, Project.name == name)
        assert not _rows(tracker, other, Comment, Comment.body == "On it.")


def test_bad_form_input_is_refused_with_the_page_again(tracker: Tracker) -> None:
    async def main() -> None:
        async with tracker.signed_in("acme") as client:
            csrf = csrf_of((await client.get("/projects")).text)
            before = len(_rows(tracker, "acme", Project))
            blank = await client.post("/projects", data={"csrf": csrf, "name": "  "})
            assert blank.status_code == 422 and "name is required" in blank.text
            bad_key = await client.post("/projects", data={"csrf": csrf, "name": "Valid", "key": "1-bad"})
            assert bad_key.status_code == 422 and "key must be" in bad_key.text
            taken = await client.post("/projects", data={"csrf": csrf, "name": "Again", "key": "RKT"})
            assert taken.status_code == 422 and "exists already" in taken.text
            assert len(_rows(tracker, "acme", Project)) == before
            [rkt] = _rows(tracker, "acme", Project, Project.key == "RKT")
            task = await client.post(
                f"/projects/{rkt.id}/tasks", data={"csrf": csrf, "title": "t", "priority": "critical", "due_on": "soon"}
            )
            assert task.status_code == 422 and "unknown priority" in task.text and "due date" in task.text

    tracker.runner.run(main())


def test_forms_need_the_sessions_csrf_token(tracker: Tracker) -> None:
    name = f"Forged {uuid.uuid4().hex[:6]}"

    async def main() -> None:
        async with tracker.signed_in("acme") as client:
            for data in ({"name": name}, {"name": name, "csrf": "guess"}):
                refused = await client.post("/projects", data=data)
                assert refused.status_code == 403
        async with tracker.signed_in("globex") as globex:
            globex_csrf = csrf_of((await globex.get("/projects")).text)
        async with tracker.signed_in("acme") as client:
            refused = await client.post("/projects", data={"name": name, "csrf": globex_csrf})
            assert refused.status_code == 403

    tracker.runner.run(main())
    assert not _rows(tracker, "acme", Project, Project.name == name)


def test_html_is_escaped(tracker: Tracker) -> None:
    async def main() -> None:
        async with tracker.signed_in("initech") as client:
            csrf = csrf_of((await client.get("/projects")).text)
            created = await client.post(
                "/projects", data={"csrf": csrf, "name": "<script>alert(1)</script>", "key": "XSS"}
            )
            page = await client.get(created.headers["location"])
            assert "<script>alert(1)</script>" not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text

    tracker.runner.run(main())


def test_only_owners_and_admins_add_members(tracker: Tracker) -> None:
    email = f"new-{uuid.uuid4().hex[:6]}@acme.example"

    async def main() -> None:
        async with tracker.signed_in("acme", "tom@acme.example") as member:
            page = (await member.get("/members")).text
            assert "Add a member" not in page
            refused = await member.post("/members", data={"csrf": csrf_of(page), "email": email, "name": "New"})
            assert refused.status_code == 403
        async with tracker.signed_in("acme", "ada@acme.example") as admin:
            csrf = csrf_of((await admin.get("/members")).text)
            added = await admin.post(
                "/members", data={"csrf": csrf, "email": email, "name": "New Person", "role": "member"}
            )
            assert added.status_code == 303
            again = await admin.post("/members", data={"csrf": csrf, "email": email, "name": "New Person"})
            assert again.status_code == 422 and "member already" in again.text
            owner = await admin.post(
                "/members", data={"csrf": csrf, "email": "x@acme.example", "name": "X", "role": "owner"}
            )
            assert owner.status_code == 422
        # the new member can sign in to acme, and only to acme
        async with tracker.signed_in("acme", email) as new:
            assert "New Person" in (await new.get("/")).text
        async with tracker.client("globex") as client:
            assert (await client.post("/login", data={"email": email})).status_code == 401

    tracker.runner.run(main())
    assert _rows(tracker, "acme", Member, Member.email == email)
    assert not _rows(tracker, "globex", Member, Member.email == email)


# -- the first account of a tenant with nobody in it (made with `tenantry tenants create`) ------
def _first_account(name: str, email: str) -> dict[str, str]:
    return {"name": name, "email": email}


def test_a_new_tenant_offers_its_first_account_once(tracker: Tracker) -> None:
    slug = f"newco-{uuid.uuid4().hex[:6]}"
    tracker.tn.tenants.create(slug, name="Newco Ltd")

    async def main() -> None:
        async with tracker.client(slug) as founder:
            offer = await founder.get("/login")
            assert (
                offer.status_code == 200
                and 'action="/first-account"' in offer.text
                and "Welcome to Newco Ltd" in offer.text
            )
            bad = await founder.post("/first-account", data=_first_account("", "not-an-address"))
            assert bad.status_code == 422 and "not an e-mail address" in bad.text and "name is required" in bad.text
            made = await founder.post("/first-account", data=_first_account("Fay Founder", " Fay@Newco.Example "))
            assert made.status_code == 303 and made.headers["location"] == "/"
            dashboard = await founder.get("/")
            assert dashboard.status_code == 200 and '<span id="current-user">Fay Founder</span>' in dashboard.text
            assert "Add a member" in (await founder.get("/members")).text  # the owner adds everyone else
        async with tracker.client(slug) as latecomer:
            page = await latecomer.get("/login")
            assert "Sign in to Newco Ltd" in page.text and "/first-account" not in page.text  # the offer is gone
            # a direct POST is refused, and signs in nobody
            refused = await latecomer.post("/first-account", data=_first_account("Mallory", "mallory@evil.example"))
            assert refused.status_code == 409 and "set-cookie" not in refused.headers
            assert "has its first account already" in refused.text
        async with tracker.client("acme") as client:  # a seeded tenant never offered one either
            assert "/first-account" not in (await client.get("/login")).text
            refused = await client.post("/first-account", data=_first_account("Mallory", "mallory@evil.example"))
            assert refused.status_code == 409 and "set-cookie" not in refused.headers

    tracker.runner.run(main())
    [member] = _rows(tracker, slug, Member)
    assert (member.email, member.name, member.role) == ("fay@newco.example", "Fay Founder", Role.owner)
    assert not _rows(tracker, "acme", Member, Member.email == "mallory@evil.example")


def test_racing_first_accounts_make_one_owner_per_tenant(tracker: Tracker) -> None:
    """Concurrent POSTs to two empty tenants: in each, exactly one wins and the rest get 409
    (the check and the insert are one transaction under the tenant's lock); the tenants do
    not wait for each other's lock."""
    slugs = [f"race-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for slug in slugs:
        tracker.tn.tenants.create(slug, name=slug.title())

    async def post(slug: str, i: int) -> tuple[str, int]:
        async with tracker.client(slug) as client:
            response = await client.post(
                "/first-account", data=_first_account(f"Racer {i}", f"racer{i}@{slug}.example")
            )
            return slug, response.status_code

    async def offer(slug: str) -> int:
        async with tracker.client(slug) as client:
            return (await client.get("/login")).status_code

    async def main() -> list[tuple[str, int]]:
        # first as many concurrent reads, so that the pools hold enough connections for
        # the posts to run side by side (rather than one after the other for want of one)
        assert set(await asyncio.gather(*(offer(slug) for _ in range(4) for slug in slugs))) == {200}
        return list(await asyncio.gather(*(post(slug, i) for i in range(4) for slug in slugs)))

    results = tracker.runner.run(main())
    for slug in slugs:
        assert sorted(code for s, code in results if s == slug) == [303, 409, 409, 409], results
        [owner] = _rows(tracker, slug, Member)
        assert owner.role == Role.owner


# -- hostile requests ---------------------------------------------------------------------------
@pytest.mark.parametrize(("viewer", "owner"), [("acme", "globex"), ("globex", "initech"), ("initech", "acme")])
def test_ids_of_another_tenant_find_nothing(tracker: Tracker, viewer: str, owner: str) -> None:
    tag = uuid.uuid4().hex[:6]
    secret, planted_title, assigned_title = f"Secret of {owner} {tag}", f"planted {tag}", f"assigned away {tag}"
    own = {p.id for p in _rows(tracker, viewer, Project)}
    target = _new_project(tracker, owner, secret)
    while target in own:  # schema and database tiers count ids of their own: find one the viewer lacks
        target = _new_project(tracker, owner, secret)
    owner_task = _rows(tracker, owner, Task)[0]
    viewer_tasks = {t.id for t in _rows(tracker, viewer, Task)}
    viewer_comments = len(_rows(tracker, viewer, Comment))

    async def main() -> None:
        async with tracker.signed_in(viewer) as client:
            csrf = csrf_of((await client.get("/projects")).text)
            for project in _rows(tracker, owner, Project):
                page = await client.get(f"/projects/{project.id}")
                assert project.name not in page.text
                assert page.status_code == (200 if project.id in own else 404)
            missing = await client.get(f"/projects/{target}")
            assert missing.status_code == 404 and "Not found" in missing.text and secret not in missing.text
            posted = await client.post(f"/projects/{target}/tasks", data={"csrf": csrf, "title": planted_title})
            assert posted.status_code == 404
            if owner_task.id not in viewer_tasks:
                assert (await client.get(f"/tasks/{owner_task.id}")).status_code == 404
                comment = await client.post(
                    f"/tasks/{owner_task.id}/comments", data={"csrf": csrf, "body": planted_title}
                )
                assert comment.status_code == 404
                status = await client.post(f"/tasks/{owner_task.id}/status", data={"csrf": csrf, "status": "done"})
                assert status.status_code == 404
            owner_member = _rows(tracker, owner, Member)[-1]
            first = _rows(tracker, viewer, Project)[0]
            planted = await client.post(
                f"/projects/{first.id}/tasks",
                data={"csrf": csrf, "title": assigned_title, "assignee": str(owner_member.id)},
            )
            viewer_member_ids = {m.id for m in _rows(tracker, viewer, Member)}
            if owner_member.id not in viewer_member_ids:
                assert planted.status_code == 422 and "not a member" in planted.text

    tracker.runner.run(main())
    assert not _rows(tracker, owner, Task, Task.title.in_([planted_title, assigned_title]))
    assert not _rows(tracker, owner, Comment, Comment.body == planted_title)
    assert len(_rows(tracker, viewer, Comment)) == viewer_comments
    assert _rows(tracker, owner, Task, Task.id == owner_task.id)[0].status == owner_task.status


def test_a_cookie_from_one_tenant_signs_in_nobody_on_another(tracker: Tracker) -> None:
    async def main() -> None:
        async with tracker.signed_in("acme") as acme:
            cookie = acme.cookies.get(SESSION_COOKIE)
            assert cookie and (await acme.get("/")).status_code == 200
        for other in ("globex", "initech"):
            async with tracker.client(other) as client:
                carried = await client.get("/", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
                assert carried.status_code == 303 and carried.headers["location"] == "/login"
                posted = await client.post(
                    "/projects", data={"name": "carried", "csrf": "x"}, headers={"cookie": f"{SESSION_COOKIE}={cookie}"}
                )
                assert posted.status_code == 303 and posted.headers["location"] == "/login"

    tracker.runner.run(main())
    for slug in TENANTS:
        assert not _rows(tracker, slug, Project, Project.name == "carried")


def test_forged_sessions_are_refused(tracker: Tracker) -> None:
    acme = tracker.tn.tenants.get("acme")
    globex = tracker.tn.tenants.get("globex")
    keys = tracker.app.state.session_keys

    def cookie(salt_tenant: uuid.UUID, claimed: uuid.UUID, key: object = keys) -> str:
        signer = URLSafeTimedSerializer(key, salt=f"tracker.session.{salt_tenant}")
        return signer.dumps({"tenant": str(claimed), "member": 1, "csrf": "c"})

    async def main() -> None:
        async with tracker.client("globex") as client:
            for forged in (
                cookie(acme.id, globex.id),  # signed for acme, claiming globex
                cookie(globex.id, acme.id),  # signed for globex, claiming acme
                cookie(globex.id, globex.id, key="not-the-secret"),
                "garbage",
            ):
                response = await client.get("/", headers={"cookie": f"{SESSION_COOKIE}={forged}"})
                assert response.status_code == 303, forged
            # the real thing, for contrast
            good = await client.get("/", headers={"cookie": f"{SESSION_COOKIE}={cookie(globex.id, globex.id)}"})
            assert good.status_code == 200

    tracker.runner.run(main())


def test_a_session_outlives_a_restart_and_holds_on_every_instance(tracker: Tracker, plane: Tracker) -> None:
    """The cookie key is derived from the catalog's stored secret, not made up per process:
    an app started afresh on the same settings, and the data-plane instance beside it, accept
    the cookie; an app whose settings hold another secret does not (the negative control)."""
    restarted_tn = Tenantry(tracker.tn.settings, metadata=Base.metadata, actor="pytest-restarted")
    stranger_tn = Tenantry(tracker.tn.settings.with_changes(secret_keys=new_key("stranger")), metadata=Base.metadata)
    restarted = Tracker(tn=restarted_tn, app=create_app(restarted_tn), runner=tracker.runner)
    stranger = Tracker(tn=stranger_tn, app=create_app(stranger_tn), runner=tracker.runner)

    async def main() -> list[int]:
        async with tracker.signed_in("globex") as first:
            cookie = first.cookies[SESSION_COOKIE]
        statuses = []
        for instance in (restarted, plane, stranger):
            async with instance.client("globex") as client:
                response = await client.get("/", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
                statuses.append(response.status_code)
        return statuses

    try:
        assert tracker.runner.run(main()) == [200, 200, 303]
    finally:
        for tn in (restarted_tn, stranger_tn):
            tracker.runner.run(tn.aclose())
            tn.close()


def test_session_cookie_is_host_only_and_http_only(tracker: Tracker) -> None:
    async def main() -> None:
        async with tracker.client("acme") as client:
            response = await client.post("/login", data={"email": LOGIN["acme"]})
            header = response.headers["set-cookie"].lower()
            assert "httponly" in header and "samesite=lax" in header and "domain=" not in header
            unknown = await client.post("/login", data={"email": LOGIN["globex"]})
            assert unknown.status_code == 401 and "set-cookie" not in unknown.headers

    tracker.runner.run(main())


def test_signed_out_pages_redirect_to_sign_in(tracker: Tracker) -> None:
    async def main() -> None:
        async with tracker.client("initech") as client:
            for path in ("/", "/projects", "/projects/1", "/tasks/1", "/members"):
                response = await client.get(path)
                assert response.status_code == 303 and response.headers["location"] == "/login"
            assert "Sign in to Initech Corporation" in (await client.get("/login")).text

    tracker.runner.run(main())


@pytest.mark.parametrize(
    "host",
    [
        "nobody.localhost",
        "localhost",
        "evil.example",
        "acme.localhost.evil.example",
        "a.acme.localhost",
        "-acme.localhost",
        "www.localhost",
        "[::1]:8000",
        "127.0.0.1:8000",
        "acme%00.localhost",
        "",
    ],
)
def test_unknown_hosts_get_404(tracker: Tracker, host: str) -> None:
    async def main() -> httpx.Response:
        async with tracker.client("acme") as client:
            return await client.get("/login", headers={"host": host})

    response = tracker.runner.run(main())
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_host_names_are_case_insensitive_and_may_carry_a_port(tracker: Tracker) -> None:
    async def main() -> None:
        async with tracker.client("acme") as client:
            for host in ("ACME.localhost", "acme.localhost:8000", "acme.localhost."):
                response = await client.get("/login", headers={"host": host})
                assert response.status_code == 200 and "Acme Corporation" in response.text

    tracker.runner.run(main())


def test_suspended_tenant_gets_403_and_comes_back(tracker: Tracker) -> None:
    slug = f"hooli-{uuid.uuid4().hex[:6]}"
    tracker.tn.tenants.create(slug, name="Hooli")
    seed(tracker.tn, slug, dataset="acme")
    tracker.tn.branding.set(slug, {"colors": {"primary": "#5f3dc4"}})

    async def status() -> int:
        async with tracker.client(slug) as client:
            response = await client.get("/login")
            return response.status_code

    async def pages() -> tuple[httpx.Response, httpx.Response]:
        async with tracker.client(slug) as client:
            return await client.get("/", headers=BROWSER), await client.get("/")

    assert tracker.runner.run(status()) == 200
    tracker.tn.tenants.suspend(slug)
    try:
        assert tracker.runner.run(status()) == 403
        page, api = tracker.runner.run(pages())
    finally:
        tracker.tn.tenants.resume(slug)
    assert tracker.runner.run(status()) == 200
    # a browser gets a page in the tenant's brand with a next step, and never its slug
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Hooli is unavailable</h1>" in page.text and "--brand-primary: #5f3dc4;" in page.text
    assert "contact your administrator" in page.text and slug not in page.text
    # API clients: the problem document as before
    assert api.status_code == 403 and api.json()["type"] == "urn:tenantry:problem:tenant-not-active"


def test_a_host_naming_no_tenant_shows_a_neutral_page_or_the_demos_list_of_sites(tracker: Tracker) -> None:
    """The tracker's default names no tenant; with :func:`site_directory` (what ``tenantry
    demo`` passes) ``http://localhost:8000/`` lists the active tenants' sites, with links."""
    suspended = f"gone-{uuid.uuid4().hex[:6]}"
    tracker.tn.tenants.create(suspended, name="Gone Away Ltd")
    tracker.tn.tenants.suspend(suspended)
    demo_app = create_app(tracker.tn, no_tenant_page=site_directory(tracker.tn))

    async def main() -> list[httpx.Response]:
        async with (
            tracker.client("acme") as client,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=demo_app), base_url="http://localhost:8000") as demo,
        ):
            return [
                await client.get("/", headers={"host": "localhost:8000", **BROWSER}),
                await demo.get("/", headers=BROWSER),
                await demo.get("/", headers={**BROWSER, "host": "nobody.localhost:8000"}),
                await demo.get("/"),
            ]

    neutral, listing, unknown, api = tracker.runner.run(main())
    assert neutral.status_code == 404 and "There is no site at this address" in neutral.text
    assert not any(slug in neutral.text for slug in TENANTS) and "Corporation" not in neutral.text
    for page in (listing, unknown):
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        for slug in TENANTS:
            assert f'<a href="http://{slug}.localhost:8000/">{slug.title()} Corporation</a>' in page.text
        assert suspended not in page.text and "Gone Away" not in page.text
    assert api.status_code == 404 and api.json()["type"] == "urn:tenantry:problem:no-tenant"


def test_the_tenant_is_unbound_after_each_request(tracker: Tracker) -> None:
    async def main() -> None:
        # ASGITransport runs the app in this very task: a binding that outlived the request
        # would show here
        async with tracker.signed_in("acme") as client:
            assert current_tenant() is None
            await client.get("/projects")
            assert current_tenant() is None
            await client.get("/projects/999999999")
            assert current_tenant() is None
        async with tracker.client("acme") as client:
            await client.get("/", headers={"host": "suspended-or-not.localhost"})
            assert current_tenant() is None

    tracker.runner.run(main())


def test_seed_writes_once(tracker: Tracker) -> None:
    before = len(_rows(tracker, "initech", Project))
    assert seed(tracker.tn, "initech") is False
    assert len(_rows(tracker, "initech", Project)) == before


# -- the code itself ----------------------------------------------------------------------------
def test_a_verified_custom_domain_serves_its_tenant_and_a_pending_one_nothing(tracker: Tracker) -> None:
    class Proven:
        method = "http"

        def check(self, hostname: str, token: str) -> Verdict:
            return Verdict(True, "proven in a test")

    host = f"tracker-{uuid.uuid4().hex[:8]}.globex.example"
    tracker.tn.domains.add(host, "globex")

    async def get() -> httpx.Response:
        async with tracker.client("acme") as client:
            return await client.get("/login", headers={"host": host.upper() + "."})

    assert tracker.runner.run(get()).status_code == 404  # pending: not served
    tracker.tn.domains.verify(host, checker=Proven())
    served = tracker.runner.run(get())
    assert served.status_code == 200 and "Globex" in served.text and "Acme" not in served.text
    tracker.tn.domains.remove(host)
    assert tracker.runner.run(get()).status_code == 404


def test_the_app_code_never_names_the_tenant_column() -> None:
    """Only the models name ``tenant_id``, and only in composite keys (foreign, unique, index)."""
    tracker = ROOT / "examples" / "tracker"
    files = [p for p in tracker.rglob("*") if p.is_file() and p.suffix in {".py", ".html", ".md"}]
    assert len(files) > 8
    for path in files:
        text = path.read_text()
        if path.name == "models.py":
            for line in text.splitlines():
                if "tenant_id" in line:
                    assert re.search(
                        r'\[\s*"tenant_id"|"tracker_\w+\.tenant_id"|Constraint\("tenant_id"|Index\("[\w]+", "tenant_id"',
                        line,
                    ), line
        elif path.name != "README.md":
            assert "tenant_id" not in text, f"{path.relative_to(ROOT)} names tenant_id"


def test_a_write_during_a_move_is_503_with_retry_after(tracker: Tracker) -> None:
    """The SQLAlchemy path the tracker writes by: TenantMoving reaches the edge typed."""
    acme = tracker.tn.tenants.get("acme")

    async def main() -> httpx.Response:
        async with tracker.signed_in("acme") as client:
            csrf = csrf_of((await client.get("/projects")).text)
            with frozen(tracker.tn, acme, "tracker_projects"):
                return await client.post("/projects", data={"csrf": csrf, "name": "During the move"})

    response = tracker.runner.run(main())
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:tenantry:problem:tenant-moving"


# -- a data-plane process: the runtime and reader roles' URLs only, no admin URL ---------------
# It serves every tier (reads, form writes, a custom domain, its brand), and through its own
# connections it can neither write the catalog nor become the owner; control-plane work fails
# with ControlPlaneOnly while the admin process beside it does the same work (the negative
# control). It shares this module's catalog: a catalog of its own would cost seconds.
@pytest.fixture(scope="module")
def plane(tracker: Tracker) -> Iterator[Tracker]:
    """The tracker of ``tracker``'s catalog, run by a process with data-plane credentials."""
    settings = tracker.tn.data_plane_settings()
    tn = Tenantry(settings, metadata=Base.metadata, actor="pytest-data-plane")
    try:
        yield Tracker(tn=tn, app=create_app(tn), runner=tracker.runner)
    finally:
        tracker.runner.run(tn.aclose())


def test_it_holds_the_runtime_and_reader_roles_only(plane: Tracker, tracker: Tracker) -> None:
    s = plane.tn.settings
    assert s.data_plane and s.database_url is None and not s.embedded
    assert s.runtime_url is not None and s.reader_url is not None
    users = {conninfo_to_dict(u.get_secret_value()).get("user") for u in (s.runtime_url, s.reader_url)}
    assert users == {s.runtime_role, s.reader_role}
    admin_user = conninfo_to_dict(tracker.tn.admin_url).get("user")
    assert admin_user not in users
    with pytest.raises(ControlPlaneOnly, match="data-plane credentials only"):
        plane.tn.admin_url


def test_it_serves_every_tier(plane: Tracker, tracker: Tracker) -> None:
    name = f"Plane {uuid.uuid4().hex[:6]}"

    async def main() -> None:
        for slug, tier in (("acme", "pooled"), ("globex", "schema"), ("initech", "database")):
            async with plane.signed_in(slug) as client:
                dashboard = (await client.get("/")).text
                assert f"{slug.title()} Corporation" in dashboard and f"{tier} isolation" in dashboard
                projects = (await client.get("/projects")).text
                assert all(p.name in projects for p in DATASETS[slug].projects)
                csrf = csrf_of(projects)
                created = await client.post("/projects", data={"csrf": csrf, "name": f"{name} {slug}"})
                assert created.status_code == 303
                assert (await client.get("/_brand/theme.css")).status_code == 200
        async with plane.signed_in("acme") as client:  # each write landed in its own tenant only
            shown = (await client.get("/projects")).text
            assert f"{name} acme" in shown and f"{name} globex" not in shown and f"{name} initech" not in shown

    plane.runner.run(main())
    # the admin process sees the rows the data plane wrote, each in its tenant
    for slug in TENANTS:
        with tracker.tn.tenant(slug), Session(tracker.tn.engine()) as session:
            found = session.scalars(sa.select(Project.name).where(Project.name.startswith(name))).all()
            assert found == [f"{name} {slug}"]


def test_it_learns_of_catalog_changes_as_the_reader(plane: Tracker, tracker: Tracker) -> None:
    """A custom domain added and verified by the control plane serves through the data plane
    (its LISTEN runs as the reader); removed, it stops."""

    class Proven:
        method = "http"

        def check(self, hostname: str, token: str) -> Verdict:
            return Verdict(True, "proven in a test")

    host = f"plane-{uuid.uuid4().hex[:8]}.globex.example"

    async def get() -> int:
        async with plane.client("acme") as client:
            return (await client.get("/login", headers={"host": host})).status_code

    assert plane.runner.run(get()) == 404
    tracker.tn.domains.add(host, "globex")
    tracker.tn.domains.verify(host, checker=Proven())
    assert plane.runner.run(get()) == 200
    tracker.tn.domains.remove(host)
    listener = plane.tn.plane._listener
    assert listener is not None and listener.listening.is_set()
    assert conninfo_to_dict(listener._url).get("user") == plane.tn.settings.reader_role


def test_control_plane_work_is_refused_with_a_typed_error(plane: Tracker, tracker: Tracker) -> None:
    for work in (
        lambda tn: tn.tenants.create(f"dp-{uuid.uuid4().hex[:6]}"),
        lambda tn: tn.tenants.suspend("acme"),
        lambda tn: tn.tenants.get("acme"),
        lambda tn: tn.schema.init(),
        lambda tn: tn.schema.role_problems(),
    ):
        with pytest.raises(ControlPlaneOnly, match="TENANTRY_DATABASE_URL"):
            work(plane.tn)
    assert tracker.tn.tenants.get("acme").slug == "acme"  # the control plane's own process can


def test_its_connections_can_neither_write_the_catalog_nor_become_the_owner(plane: Tracker, tracker: Tracker) -> None:
    owner = sql.Identifier(plane.tn.settings.owner_role)
    writes = [
        sql.SQL("UPDATE tenantry_routing.tenants SET status = 'active' WHERE false"),
        sql.SQL("UPDATE tenantry.tenants SET status = 'active' WHERE false"),
        sql.SQL("DELETE FROM tenantry.placements WHERE false"),
    ]
    becomes = [sql.SQL("SET ROLE {}").format(owner), sql.SQL("SET SESSION AUTHORIZATION {}").format(owner)]
    with plane.tn.tenant("initech") as bound:
        assert bound.route is not None and bound.route.own_database  # the runtime role in its own database too
    for statement in writes + becomes:
        with plane.tn.catalog_reader() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        # the runtime role, in the catalog's database (pooled, schema tier) and a tenant's own
        for slug in ("acme", "globex") if statement in writes else TENANTS:
            with (
                plane.tn.tenant(slug),
                plane.tn.connection() as conn,
                pytest.raises(psycopg.errors.InsufficientPrivilege),
            ):
                conn.execute(statement)
    # negative control: the admin connection does each (rolled back)
    with tracker.tn.admin() as conn:
        for statement in writes + becomes:
            with conn.transaction(force_rollback=True):
                conn.execute(statement)
