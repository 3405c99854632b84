"""Isolation as a user sees it: headless Chromium (Debian's) signs in to two tenants' sites of a
running ``tenantry demo`` and finds only each tenant's own data; another tenant's project id
is a 404, and a session from one site is no session on the other. And the example app as a
person on a phone sees it (390 px wide), the demo's list of sites at ``localhost``, and the
admin API's front door and documentation pages, rendered with every request off this machine
refused."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tenantry.cli.demo import DEMO_TENANTS
from tests.e2e.support import DemoProcess, demo_env, start_demo, tenantry_command

CHROMIUM = Path("/usr/bin/chromium")
PROJECTS = {
    "acme": {"Rocket Skates v2", "Giant Magnet Recall", "Anvil Delivery Drones"},
    "globex": {"Hammock District", "Doomsday Device Audit", "Cypress Creek Campus"},
    "initech": {"TPS Report Cover Sheets", "Y2K Remediation", "Stapler Inventory"},
}
LOGIN = {t.slug: t.login for t in DEMO_TENANTS}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium"
            " (`apt-get install -y chromium`; .ci/run installs it)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def _sign_in(page: Page, base: str, email: str) -> None:
    page.goto(base + "login")
    page.fill("input[name=email]", email)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(base)


def _project_links(page: Page, base: str) -> dict[str, int]:
    page.goto(base + "projects")
    links = page.locator("a.project-name")
    return {
        links.nth(i).inner_text(): int(re.sub(r"\D", "", links.nth(i).get_attribute("href") or ""))
        for i in range(links.count())
    }


def test_two_sites_each_show_only_their_own_data(demo: DemoProcess, browser: Browser) -> None:
    acme, globex = demo.url("acme"), demo.url("globex")
    assert acme.startswith("http://acme.localhost:") and globex.startswith("http://globex.localhost:")
    context = browser.new_context()  # one browser profile for both sites, as a person would have
    page = context.new_page()
    try:
        # signed in to acme: acme's name and projects, nobody else's
        _sign_in(page, acme, LOGIN["acme"])
        assert page.inner_text("#org-name") == "Acme Corporation"
        acme_projects = _project_links(page, acme)
        assert set(acme_projects) == PROJECTS["acme"]

        # the acme session is no session on globex: its sign-in page comes up
        page.goto(globex)
        assert page.url == globex + "login"
        assert "Sign in to Globex Corporation" in page.content()

        _sign_in(page, globex, LOGIN["globex"])
        assert page.inner_text("#org-name") == "Globex Corporation"
        assert page.inner_text("#current-user") == "Hank Scorpio"
        globex_projects = _project_links(page, globex)
        assert set(globex_projects) == PROJECTS["globex"]

        # globex creates a project through its form until its id is one acme does not have
        # (schema- and database-tier tenants number their rows on their own)
        secret = "Globex Secret Lair"
        secret_id = 0
        for attempt in range(10):
            page.goto(globex + "projects")
            page.fill("input[name=name]", f"{secret} {attempt}")
            page.click("button:has-text('Create project')")
            page.wait_for_url(re.compile(r"/projects/\d+$"))
            secret_id = int(page.url.rsplit("/", 1)[1])
            assert page.inner_text("#project-name") == f"{secret} {attempt}"
            if secret_id not in acme_projects.values():
                break
        assert secret_id not in acme_projects.values()

        # back on acme (still signed in there): the same lists, and globex's ids are 404s
        page.goto(acme + "projects")
        assert set(_project_links(page, acme)) == PROJECTS["acme"]
        assert secret not in page.content()
        response = page.goto(acme + f"projects/{secret_id}")
        assert response is not None and response.status == 404
        assert page.inner_text("h1") == "Not found" and secret not in page.content()
        for name, project_id in globex_projects.items():
            response = page.goto(acme + f"projects/{project_id}")
            assert response is not None and name not in page.content()
            assert response.status == (200 if project_id in acme_projects.values() else 404)

        # and the other way round: acme's project pages never show on globex
        for name, project_id in acme_projects.items():
            response = page.goto(globex + f"projects/{project_id}")
            assert response is not None and name not in page.content()

        # each site's cookie is its own: two cookies, each for its own host only
        cookies = {c["domain"]: c for c in context.cookies()}
        assert set(cookies) == {"acme.localhost", "globex.localhost"}
        assert all(c["httpOnly"] for c in cookies.values())
    finally:
        context.close()


def test_unknown_tenant_site_is_404(demo: DemoProcess, browser: Browser) -> None:
    page = browser.new_page()
    try:
        response = page.goto(demo.url("acme").replace("acme.", "umbrella."))
        assert response is not None and response.status == 404
    finally:
        page.close()


def test_the_admin_api_answers_with_the_token_the_demo_printed(demo: DemoProcess) -> None:
    api = demo.report["admin_api"]
    assert api is not None and api["token"], demo.report
    listed = httpx.get(f"{api['url'].rstrip('/')}/v1/tenants", headers={"Authorization": f"Bearer {api['token']}"})
    assert listed.status_code == 200, listed.text
    assert {t["slug"] for t in listed.json()["items"]} >= {"acme", "globex", "initech"}
    refused = httpx.get(f"{api['url'].rstrip('/')}/v1/tenants", headers={"Authorization": "Bearer tnt_forged_token"})
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/problem+json")


def _offline(context: BrowserContext) -> list[str]:
    """Refuse every request of ``context`` that leaves this machine; the list of those refused."""
    refused: list[str] = []

    def guard(route: Route) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            refused.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    context.route("**/*", guard)
    return refused


def test_the_admin_docs_render_offline(demo: DemoProcess, browser: Browser) -> None:
    """The URL the demo prints for the admin API is a page of links; Swagger UI and ReDoc
    render the API's operations with nothing but the API's own host to load from."""
    base = demo.report["admin_api"]["url"].rstrip("/") + "/"
    context = browser.new_context()
    refused = _offline(context)
    page = context.new_page()
    try:
        response = page.goto(base)
        assert response is not None and response.status == 200
        assert page.inner_text("h1") == "tenantry admin API"
        page.click("text=Interactive API docs")
        page.wait_for_url(base + "docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        operations = page.locator(".opblock")
        assert operations.count() >= 50  # every operation of the spec, grouped by tag
        assert page.locator(".opblock-summary-path", has_text="/v1/tenants/{tenant}/brand").count() >= 1

        page.goto(base)
        page.click("text=API reference")
        page.wait_for_url(base + "redoc")
        page.wait_for_selector("[data-section-id*='operation/']", timeout=20_000)
        assert page.locator("[data-section-id*='operation/']").count() >= 50
        assert page.locator("h1", has_text="tenantry admin API").count() == 1
        assert refused == [], refused
    finally:
        context.close()


def test_rerun_reuses_the_data_and_sigterm_stops_it(demo: DemoProcess, demo_scratch) -> None:
    # a second demo on the same database (other ports): nothing created, nothing seeded again
    again = start_demo(demo_scratch)
    try:
        assert [(t["slug"], t["tier"], t["created"], t["seeded"]) for t in again.report["tenants"]] == [
            ("acme", "pooled", False, False),
            ("globex", "schema", False, False),
            ("initech", "database", False, False),
        ]
        assert all(t["created"] for t in demo.report["tenants"]) and all(t["seeded"] for t in demo.report["tenants"])
    finally:
        assert again.stop(signal.SIGTERM) == 0, "".join(again.stderr)[-2000:]


def test_port_in_use_is_one_line_and_exit_2(demo_scratch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            tenantry_command("demo", "--port", str(port)),
            env=demo_env(demo_scratch),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr


# -- the example app at a phone's width, and its details ------------------------------------------
PHONE = {"width": 390, "height": 844}
_ONE_LINE = """els => els.map(el => {
    const cell = el.closest('td'), style = getComputedStyle(cell);
    return [el.getClientRects().length, el.getBoundingClientRect().height <= 1.5 * parseFloat(style.lineHeight), style.whiteSpace];
})"""


def test_every_page_fits_a_phone_and_the_details_hold(demo: DemoProcess, browser: Browser) -> None:
    """At 390 px no page is wider than the screen (wide tables scroll inside it), the due date
    stays on one line, the header names the product once, the Update button is as tall as its
    select, and /favicon.ico is an icon."""
    acme = demo.url("acme")
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(acme + "login")
        widths = {"login": page.evaluate("document.documentElement.scrollWidth")}
        _sign_in(page, acme, LOGIN["acme"])
        assert page.inner_text("header .brand") == "Acme Tracker"  # not "Acme Tracker tracker"
        widths["dashboard"] = page.evaluate("document.documentElement.scrollWidth")
        due = page.eval_on_selector_all("#my-tasks td.due time", _ONE_LINE)
        project = next(iter(_project_links(page, acme).values()))
        widths["projects"] = page.evaluate("document.documentElement.scrollWidth")
        page.goto(acme + f"projects/{project}")
        widths["project"] = page.evaluate("document.documentElement.scrollWidth")
        due += page.eval_on_selector_all("#tasks td.due time", _ONE_LINE)
        page.click("a.task-title >> nth=0")
        page.wait_for_url(re.compile(r"/tasks/\d+$"))
        widths["task"] = page.evaluate("document.documentElement.scrollWidth")
        select, button = page.locator("form.row select").bounding_box(), page.locator("form.row button").bounding_box()
        page.goto(acme + "members")
        widths["members"] = page.evaluate("document.documentElement.scrollWidth")
        assert all(w <= PHONE["width"] for w in widths.values()), widths
        assert due and all(d == [1, True, "nowrap"] for d in due), due
        assert select and button and abs(select["height"] - button["height"]) < 1, (select, button)
        assert abs(select["y"] - button["y"]) < 1
        icon = page.goto(acme + "favicon.ico")  # (the browser resolves *.localhost; page.request would not)
        assert icon is not None and icon.status == 200 and icon.headers["content-type"] == "image/png"
    finally:
        context.close()


def test_localhost_lists_the_demos_sites(demo: DemoProcess, browser: Browser) -> None:
    """``http://localhost:<port>/`` names no tenant: the demo lists its sites there, with links
    that lead to them."""
    acme = demo.url("acme")
    page = browser.new_page()
    try:
        response = page.goto(acme.replace("acme.", ""))
        assert response is not None and response.status == 404
        links = page.locator("#sites a")
        assert {links.nth(i).inner_text() for i in range(links.count())} >= {t.name for t in DEMO_TENANTS}
        page.click("#sites a:has-text('Acme Corporation')")
        page.wait_for_url(acme + "login")
        assert "Sign in to Acme Corporation" in page.content()
    finally:
        page.close()
