"""``/v1/tenants/{tenant}/brand``: read, change (unreadable colours refused unless allowed,
warnings in the body), upload a logo and a favicon as raw bytes (typed by content,
size-limited before being read whole), reset, history and rollback; nothing saved on a refused
field, one tenant's brand never touched by another's calls."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tenantry import Tenant, Tenantry
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem
from tests.branding.images import pillow, png


def test_a_fresh_brand_is_the_defaults(api: Client, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("br", name="Acme Corporation")
    for key in (tenant.slug, str(tenant.id)):
        got = api.get(f"/v1/tenants/{key}/brand")
        assert got.status_code == 200, got.text
        brand = got.json()
        assert brand["tenant"] == tenant.slug and brand["tenant_id"] == str(tenant.id) and brand["version"] == 0
        assert brand["product_name"] == "Acme Corporation" and brand["theme"]["logo"] is None
        assert brand["warnings"] == [] and brand["updated_by"] is None


def test_change_returns_contrast_warnings(
    api: Client, tn: Tenantry, make_tenant: Callable[..., Tenant], make_token: MakeToken
) -> None:
    tenant = make_tenant("br")
    token, secret = make_token("brands:write", prefix="brander")
    url = f"/v1/tenants/{tenant.slug}/brand"
    change = {"product_name": "Roadrunner", "colors": {"primary": "rgb(255, 255, 0)"}}
    # unreadable colours are refused, each pair named, and nothing is saved
    problem = _problem(api.as_token(secret).patch(url, json=change), 422)
    assert problem["type"] == "urn:tenantry:problem:low-contrast"
    assert problem["problems"] == [
        "text on the primary colour: on_primary #ffffff on primary #ffff00, 1.07:1",
        "links in the primary colour on the background: primary #ffff00 on background #f7f8fa, 1.01:1",
    ]
    assert problem["detail"].endswith("send allow_low_contrast: true to save them anyway")
    assert api.get(url).json()["version"] == 0
    # ... unless the change says so: saved, with warnings
    changed = api.as_token(secret).patch(url, json=change | {"allow_low_contrast": True})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["changed"] is True and body["brand"]["version"] == 1
    assert body["brand"]["theme"]["colors"]["primary"] == "#ffff00" and body["brand"]["product_name"] == "Roadrunner"
    assert body["warnings"] and {w["code"] for w in body["warnings"]} == {"contrast"}
    assert all(w["ratio"] < 4.5 for w in body["warnings"]) and body["brand"]["warnings"] == body["warnings"]
    assert body["brand"]["updated_by"] == f"token:{token.name}"
    [entry] = [e for e in tn.audit.list(target_type="tenant", target=tenant.slug) if e.action.startswith("brand.")]
    assert entry.action == "brand.set" and entry.actor == f"token:{token.name}"
    assert api.get(url).json()["warnings"] == body["warnings"]
    # the same again: nothing written
    same = api.patch(url, json={"colors": {"primary": "#ff0"}}).json()
    assert same["changed"] is False and same["brand"]["version"] == 1
    # colours merge key by key; null resets a field
    api.patch(url, json={"colors": {"text": "#000000"}, "allow_low_contrast": True}).raise_for_status()
    theme = api.patch(url, json={"product_name": None}).json()["brand"]["theme"]
    assert theme["colors"]["primary"] == "#ffff00" and theme["colors"]["text"] == "#000000"
    assert theme["product_name"] is None


def test_refused_changes_save_nothing(api: Client, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("br")
    url = f"/v1/tenants/{tenant.slug}/brand"
    api.patch(url, json={"colors": {"primary": "#112233"}}).raise_for_status()
    for body, fragment in (
        ({"colors": {"primary": "#112244", "text": "not-a-colour"}}, "text"),
        ({"fonts": {"body": "Comic'; }</style>"}}, "font"),
        ({"product_name": "two\nlines"}, "product name"),
        ({"email": {"sender_name": "Eve <eve@evil.example>"}}, "sender"),
        ({"email": {"templates": {"welcome": {"subject": "{{ ''.__class__ }}", "text": "x"}}}}, "welcome"),
        ({"colors": {"sparkle": "#ffffff"}}, "sparkle"),
    ):
        problem = _problem(api.patch(url, json=body), 422)
        assert problem["type"] == "urn:tenantry:problem:invalid-brand" and fragment in problem["detail"], problem
    for body in ({"logo": {"sha256": "0" * 64}}, {"layout": "wide"}, {"product_name": "nul\x00"}):
        _problem(api.patch(url, json=body), 422)
    brand = api.get(url).json()
    assert brand["version"] == 1 and brand["theme"]["colors"]["primary"] == "#112233"


def test_expected_version_guards_lost_updates(api: Client, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("br")
    url = f"/v1/tenants/{tenant.slug}/brand"
    api.patch(url, json={"colors": {"primary": "#112233"}}, params={"expected_version": 0}).raise_for_status()
    stale = _problem(api.patch(url, json={"colors": {"primary": "#445566"}}, params={"expected_version": 0}), 409)
    assert "version 1" in stale["detail"]
    _problem(api.delete(url, params={"expected_version": 0}), 409)
    _problem(
        api.put(f"{url}/logo", content=png(), headers={"content-type": "image/png"}, params={"expected_version": 5}),
        409,
    )
    assert api.get(url).json()["theme"]["colors"]["primary"] == "#112233"
    _problem(api.patch(url, json={}, params={"expected_version": -1}), 422)


def test_upload_logo_and_favicon_then_reset(
    api: Client, tn: Tenantry, make_tenant: Callable[..., Tenant], make_token: MakeToken
) -> None:
    tenant, other = make_tenant("br"), make_tenant("br")
    token, secret = make_token("brands:write", prefix="uploader")
    client = api.as_token(secret)
    url = f"/v1/tenants/{tenant.slug}/brand"
    logo = pillow("JPEG", (120, 40))
    uploaded = client.put(f"{url}/logo", content=logo, headers={"content-type": "image/jpeg"})
    assert uploaded.status_code == 200, uploaded.text
    asset = uploaded.json()["brand"]["theme"]["logo"]
    assert asset["content_type"] == "image/jpeg" and (asset["width"], asset["height"]) == (120, 40)
    assert asset["size"] == len(logo)
    favicon = client.put(f"{url}/favicon", content=png(32, 32), headers={"content-type": "image/png; charset=binary"})
    assert favicon.status_code == 200 and favicon.json()["brand"]["theme"]["favicon"]["content_type"] == "image/png"
    brand = tn.branding.get(tenant.slug)
    assert brand.theme.logo is not None and tn.branding.image(brand, "logo") == ("image/jpeg", logo)
    assert tn.branding.get(other.slug).version == 0  # the other tenant's brand is untouched
    actors = {e.actor for e in tn.audit.list(target_type="tenant", target=tenant.slug) if e.action == "brand.set"}
    assert actors == {f"token:{token.name}"}
    removed = client.patch(url, json={"favicon": None}).json()
    assert removed["brand"]["theme"]["favicon"] is None and removed["brand"]["theme"]["logo"] == asset
    reset = client.delete(url)
    assert reset.status_code == 200 and reset.json()["changed"] is True
    assert (
        reset.json()["brand"]["theme"]["logo"] is None
        and reset.json()["brand"]["theme"]["colors"]["primary"] == "#3b5bdb"
    )
    assert client.delete(url).json()["changed"] is False
    resets = [e for e in tn.audit.list(target_type="tenant", target=tenant.slug) if e.action == "brand.reset"]
    assert [e.actor for e in resets] == [f"token:{token.name}"]


def test_history_and_rollback(
    api: Client, tn: Tenantry, make_tenant: Callable[..., Tenant], make_token: MakeToken
) -> None:
    tenant = make_tenant("br")
    token, secret = make_token("brands:write", prefix="roller")
    client = api.as_token(secret)
    url = f"/v1/tenants/{tenant.slug}/brand"
    client.put(
        f"{url}/logo", content=png(rgba=b"\x71\x72\x73\xff"), headers={"content-type": "image/png"}
    ).raise_for_status()
    client.patch(url, json={"colors": {"primary": "navy"}, "product_name": "Two"}).raise_for_status()
    client.patch(url, json={"colors": {"primary": "#ffff00"}, "allow_low_contrast": True}).raise_for_status()
    client.delete(url).raise_for_status()
    page = client.get(f"{url}/history", params={"limit": 3})
    assert page.status_code == 200, page.text
    assert [v["version"] for v in page.json()["items"]] == [4, 3, 2] and page.json()["next_cursor"]
    rest = client.get(f"{url}/history", params={"cursor": page.json()["next_cursor"]}).json()
    assert [v["version"] for v in rest["items"]] == [1] and rest.get("next_cursor") is None
    first = rest["items"][0]
    assert first["actor"] == f"token:{token.name}" and first["theme"]["logo"]["content_type"] == "image/png"
    assert page.json()["items"][2]["theme"]["colors"]["primary"] == "#000080"

    # back to version 3 (yellow): judged as a change, so the override is needed again
    problem = _problem(client.post(f"{url}/rollback", json={"version": 3}), 422)
    assert problem["type"] == "urn:tenantry:problem:low-contrast" and "allow_low_contrast: true" in problem["detail"]
    back = client.post(f"{url}/rollback", json={"version": 2, "message": "navy again"})
    assert back.status_code == 200, back.text
    body = back.json()
    assert (
        body["changed"] and body["brand"]["version"] == 5 and body["brand"]["theme"]["colors"]["primary"] == "#000080"
    )
    assert body["brand"]["theme"]["logo"] == first["theme"]["logo"]  # the image comes back with it
    assert client.get(f"{url}/history", params={"limit": 1}).json()["items"][0]["message"] == "navy again"
    assert [e.action for e in tn.audit.list(target_type="tenant", target=tenant.slug)][0] == "brand.rollback"
    _problem(client.post(f"{url}/rollback", json={"version": 2}, params={"expected_version": 4}), 409)
    assert "no version 99" in _problem(client.post(f"{url}/rollback", json={"version": 99}), 404)["detail"]
    _problem(client.post(f"{url}/rollback", json={"version": -1}), 422)
    _problem(client.post(f"{url}/rollback", json={}), 422)


def test_uploads_are_typed_and_size_limited(api: Client, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("br")
    url = f"/v1/tenants/{tenant.slug}/brand"
    response = api.put(f"{url}/logo", content=png(), headers={"content-type": "text/plain"})
    assert _problem(response, 415)["detail"].startswith("send the logo as image/png")
    _problem(api.put(f"{url}/logo", content=png()), 415)  # no content type at all
    _problem(api.put(f"{url}/favicon", content=pillow("JPEG"), headers={"content-type": "image/jpeg"}), 415)
    mislabelled = _problem(api.put(f"{url}/logo", content=png(), headers={"content-type": "image/jpeg"}), 422)
    assert "image/png" in mislabelled["detail"] and "image/jpeg" in mislabelled["detail"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert "SVG" in _problem(api.put(f"{url}/logo", content=svg, headers={"content-type": "image/png"}), 422)["detail"]
    _problem(api.put(f"{url}/logo", content=b"", headers={"content-type": "image/png"}), 422)
    _problem(api.put(f"{url}/logo", content=png(4, 4), headers={"content-type": "image/png"}), 422)  # too small
    big = png(32, 32) + b"\x00" * (512 * 1024)
    too_large = _problem(api.put(f"{url}/logo", content=big, headers={"content-type": "image/png"}), 413)
    assert "512 KiB" in too_large["detail"]

    def chunks() -> object:
        async def gen():  # no Content-Length: the limit applies while reading
            for _ in range(80):
                yield b"\x89PNG" + b"\x00" * 1020

        return gen()

    streamed = api.put(f"{url}/favicon", content=chunks(), headers={"content-type": "image/png"})
    _problem(streamed, 413)
    assert api.get(url).json()["version"] == 0  # nothing saved


def test_unknown_tenants_and_scopes(api: Client, make_tenant: Callable[..., Tenant], make_token: MakeToken) -> None:
    for key in ("no-such-tenant", str(uuid.uuid4())):
        for method, suffix, kwargs in (
            ("GET", "", {}),
            ("PATCH", "", {"json": {}}),
            ("DELETE", "", {}),
            ("PUT", "/logo", {"content": png(), "headers": {"content-type": "image/png"}}),
            ("GET", "/history", {}),
            ("POST", "/rollback", {"json": {"version": 0}}),
        ):
            problem = _problem(api.request(method, f"/v1/tenants/{key}/brand{suffix}", **kwargs), 404)
            assert problem["type"] == "urn:tenantry:problem:tenant-not-found"
    tenant = make_tenant("br")
    url = f"/v1/tenants/{tenant.slug}/brand"
    _, reader = make_token("brands:read")
    _, others = make_token("tenants:write", "config:write", "flags:write", "domains:write")
    assert api.as_token(reader).get(url).status_code == 200
    assert api.as_token(reader).get(f"{url}/history").status_code == 200
    assert _problem(api.as_token(others).get(url), 403)["scope"] == "brands:read"
    _problem(api.as_token(None).get(url), 401)
    for method, suffix, kwargs in (
        ("PATCH", "", {"json": {"colors": {"primary": "#000000"}}}),
        ("DELETE", "", {}),
        ("PUT", "/logo", {"content": png(), "headers": {"content-type": "image/png"}}),
        ("PUT", "/favicon", {"content": png(), "headers": {"content-type": "image/png"}}),
        ("POST", "/rollback", {"json": {"version": 0}}),
    ):
        for secret in (reader, others):
            refused = api.as_token(secret).request(method, f"{url}{suffix}", **kwargs)
            assert _problem(refused, 403)["scope"] == "brands:write"
    assert api.get(url).json()["version"] == 0


@pytest.mark.parametrize("which", ["logo", "favicon"])
def test_deleted_tenants_take_no_brand(
    api: Client, tn: Tenantry, make_tenant: Callable[..., Tenant], which: str
) -> None:
    tenant = make_tenant("br")
    tn.tenants.delete(tenant.slug)
    response = api.put(f"/v1/tenants/{tenant.id}/brand/{which}", content=png(), headers={"content-type": "image/png"})
    _problem(response, 404)
    _problem(api.patch(f"/v1/tenants/{tenant.id}/brand", json={"product_name": "Ghost"}), 404)
