"""The example tracker wears each tenant's brand: pages link the tenant's stylesheet, logo and
favicon, which differ between tenants (on all three tiers), and one tenant's brand URLs
answer nothing on another's site."""

from __future__ import annotations

import re

import pytest

from examples.tracker.brands import BRANDS, brand
from tests.examples.support import TENANTS, Tracker, tracker  # noqa: F401 - the fixture

_LINKS = re.compile(
    r'<link rel="stylesheet" href="(?P<css>/_brand/theme\.[0-9a-f]{16}\.css)">.*'
    r'<link rel="icon" href="(?P<icon>/_brand/assets/[0-9a-f]{64}\.png)">.*'
    r'<img id="brand-logo" src="(?P<logo>/_brand/assets/[0-9a-f]{64}\.png)"[^>]*>'
    r'<span id="brand-name">(?P<name>[^<]+)</span>',
    re.S,
)


@pytest.fixture(scope="module")
def branded(tracker: Tracker) -> Tracker:  # noqa: F811
    for slug in TENANTS:
        assert brand(tracker.tn, slug)
        assert not brand(tracker.tn, slug)  # once only: a rerun keeps what is there
    return tracker


def _links(branded: Tracker, slug: str) -> dict[str, str]:
    async def page() -> str:
        async with branded.client(slug) as client:
            response = await client.get("/login")
            assert response.status_code == 200
            return response.text

    found = _LINKS.search(branded.runner.run(page()))
    assert found, f"{slug}'s page links no brand"
    return found.groupdict()


def test_each_tenant_wears_its_own_brand(branded: Tracker) -> None:
    seen: dict[str, dict[str, str]] = {}
    for slug in TENANTS:
        links = _links(branded, slug)
        assert links["name"] == BRANDS[slug][0]["product_name"]

        async def fetch() -> tuple[str, bytes]:
            async with branded.client(slug) as client:
                css = await client.get(links["css"])
                logo = await client.get(links["logo"])
                icon = await client.get(links["icon"])
                assert css.status_code == logo.status_code == icon.status_code == 200
                # where browsers look by themselves: the same icon
                default = await client.get("/favicon.ico")
                assert default.status_code == 200 and default.headers["content-type"] == "image/png"
                assert default.content == icon.content
                assert logo.headers["content-type"] == "image/png" and logo.content.startswith(b"\x89PNG")
                return css.text, logo.content

        css, logo = branded.runner.run(fetch())
        assert f"--brand-primary: {BRANDS[slug][0]['colors']['primary']};" in css
        seen[slug] = links | {"css_text": css, "logo_bytes": logo.hex()}
    for key in ("css", "logo", "icon", "css_text", "logo_bytes", "name"):
        assert len({links[key] for links in seen.values()}) == len(TENANTS), f"tenants share their {key}"


@pytest.mark.parametrize(("owner", "visitor"), [("acme", "globex"), ("globex", "initech"), ("initech", "acme")])
def test_brand_urls_of_one_tenant_answer_nothing_on_another(branded: Tracker, owner: str, visitor: str) -> None:
    theirs = _links(branded, owner)

    async def probe() -> list[int]:
        async with branded.client(owner) as client:  # warm the caches with the owner's files
            assert (await client.get(theirs["logo"])).status_code == 200
        async with branded.client(visitor) as client:
            logo = await client.get(theirs["logo"])
            icon = await client.get(theirs["icon"])
            css = await client.get(theirs["css"])
            assert owner_color not in css.text  # a redirect to the visitor's own stylesheet at most
            return [logo.status_code, icon.status_code, css.status_code]

    owner_color = BRANDS[owner][0]["colors"]["primary"]
    assert branded.runner.run(probe()) == [404, 404, 307]


def test_a_change_shows_on_the_next_page(branded: Tracker) -> None:
    before = _links(branded, "globex")
    branded.tn.branding.set("globex", {"colors": {"primary": "#0b7285"}})
    try:
        after = _links(branded, "globex")
        assert after["css"] != before["css"] and after["logo"] == before["logo"]

        async def css() -> str:
            async with branded.client("globex") as client:
                return (await client.get(after["css"])).text

        assert "--brand-primary: #0b7285;" in branded.runner.run(css())
    finally:
        branded.tn.branding.set("globex", {"colors": {"primary": BRANDS["globex"][0]["colors"]["primary"]}})
