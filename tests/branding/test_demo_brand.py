"""The issue's bar, end to end: in a running ``tenantry demo``, two tenants differ in colours
and logo (as HTTP and as a browser sees them), and a change made with ``tenantry brand set``
shows up in the running app within a second.

Runs once, on the first backend of ``TENANTRY_TEST_BACKENDS`` (as tests/e2e does)."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from examples.tracker.brands import BRANDS
from tests.branding.images import png
from tests.e2e.support import DemoProcess, demo_env, tenantry_command
from tests.support import Scratch

CHROMIUM = Path("/usr/bin/chromium")
WITHIN = 1.0


def _get(demo: DemoProcess, slug: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` on ``slug``'s site of the demo (127.0.0.1 with the tenant's Host)."""
    base = demo.url(slug)
    port = int(base.rsplit(":", 1)[1].strip("/"))
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": f"{slug}.localhost:{port}"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _brand_links(demo: DemoProcess, slug: str) -> dict[str, str]:
    status, _headers, body = _get(demo, slug, "/login")
    assert status == 200
    html = body.decode()
    css = re.search(r'<link rel="stylesheet" href="(/_brand/theme\.[0-9a-f]{16}\.css)">', html)
    logo = re.search(r'<img id="brand-logo" src="(/_brand/assets/[0-9a-f]{64}\.\w+)"', html)
    assert css and logo, html[:2000]
    return {"css": css.group(1), "logo": logo.group(1)}


def test_the_demo_tenants_differ_in_colours_and_logo(demo: DemoProcess) -> None:
    assert all(t["branded"] for t in demo.report["tenants"])
    seen = {}
    for slug in ("acme", "globex", "initech"):
        links = _brand_links(demo, slug)
        status, _, css = _get(demo, slug, links["css"])
        assert status == 200 and f"--brand-primary: {BRANDS[slug][0]['colors']['primary']};".encode() in css
        status, headers, logo = _get(demo, slug, links["logo"])
        assert status == 200 and headers["content-type"] == "image/png"
        seen[slug] = (css, logo)
        # and the other sites do not answer for this tenant's logo
        for other in ("acme", "globex", "initech"):
            if other != slug:
                assert _get(demo, other, links["logo"])[0] == 404
    assert len({css for css, _ in seen.values()}) == 3 and len({logo for _, logo in seen.values()}) == 3


def test_a_cli_change_shows_in_the_running_app_within_a_second(
    demo: DemoProcess, demo_db: Scratch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _brand_links(demo, "acme")
    globex_before = _brand_links(demo, "globex")
    (tmp_path / "new-logo.png").write_bytes(png(48, 48, b"\x5c\x94\x0d\xff"))
    env = demo_env(demo_db)
    done = subprocess.run(
        tenantry_command(
            "brand", "set", "--tenant", "acme", "--primary", "#3a7d0a", "--logo", str(tmp_path / "new-logo.png")
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    while True:
        links = _brand_links(demo, "acme")
        if links != before:
            break
        assert time.monotonic() - exited < 5, "the change never showed"
        time.sleep(0.01)
    elapsed = time.monotonic() - exited
    assert links["css"] != before["css"] and links["logo"] != before["logo"]
    assert b"--brand-primary: #3a7d0a;" in _get(demo, "acme", links["css"])[2]
    assert _get(demo, "acme", links["logo"])[2] == (tmp_path / "new-logo.png").read_bytes()
    assert _get(demo, "acme", before["logo"])[0] == 404  # the old logo is gone with the old brand
    assert _brand_links(demo, "globex") == globex_before  # nobody else changed
    assert elapsed < WITHIN
    with capsys.disabled():
        print(f"\n  tenantry brand set -> new colours and logo in the running demo after {elapsed * 1000:.0f} ms")


def test_a_browser_sees_two_brands(demo: DemoProcess) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            looks = {}
            for slug in ("globex", "initech"):
                page.goto(demo.url(slug) + "login")
                logo = page.locator("#brand-logo")
                looks[slug] = (
                    page.eval_on_selector("button", "b => getComputedStyle(b).backgroundColor"),
                    page.eval_on_selector("body", "b => getComputedStyle(b).backgroundColor"),
                    logo.evaluate("img => img.complete && img.naturalWidth"),
                    logo.get_attribute("src"),
                    page.inner_text("#brand-name"),
                )
            assert looks["globex"][0] == "rgb(35, 112, 50)" and looks["initech"][0] == "rgb(24, 100, 171)"
            assert looks["globex"][1] == "rgb(243, 250, 244)" and looks["initech"][1] == "rgb(241, 245, 251)"
            assert looks["globex"][2] == 64 and looks["initech"][2] == 64  # the logos load
            assert looks["globex"][3] != looks["initech"][3]
            assert (looks["globex"][4], looks["initech"][4]) == ("Globex Projects", "Initech TPS")
        finally:
            browser.close()
