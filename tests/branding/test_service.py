"""``tn.branding`` against the catalog: versions, audited all-or-nothing writes, unreadable
colours refused, history and rollback, content-addressed images shared and kept for the
history, concurrent changes, e-mail rendering."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tenantry import (
    Conflict,
    InvalidBrand,
    InvalidInput,
    LowContrast,
    NotFound,
    Tenant,
    TenantNotFound,
    Tenantry,
    Upload,
)
from tenantry.branding import Theme
from tests.branding.images import pillow, png


def _asset_rows(tn: Tenantry, *shas: str) -> int:
    with tn.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM tenantry.brand_assets WHERE sha256 = ANY(%s)", (list(shas),)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_new_tenant_has_the_defaults_at_version_0(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand", name="Acme Corporation")
    brand = tn.branding.get(tenant.slug)
    assert brand.version == 0 and brand.product_name == "Acme Corporation" and brand.theme.logo is None
    assert brand.sender_name == "Acme Corporation"


def test_set_saves_a_new_version_and_audits_it(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    change = tn.branding.set(tenant.slug, {"colors": {"primary": "#123456"}, "product_name": "Roadrunner"}, logo=png())
    assert change.changed and change.brand.version == 1 and change.warnings == ()
    assert change.brand.theme.colors.primary == "#123456" and change.brand.product_name == "Roadrunner"
    assert change.brand.theme.logo is not None and change.brand.theme.logo.content_type == "image/png"
    again = tn.branding.set(tenant.id, {"colors": {"primary": "#123456"}})
    assert not again.changed and again.brand.version == 1  # idempotent: nothing written
    entries = tn.audit.list(target_type="tenant", target=tenant.slug)
    assert [e.action for e in entries if e.action.startswith("brand.")] == ["brand.set"]
    entry = next(e for e in entries if e.action == "brand.set")
    assert entry.actor == "pytest" and entry.before is None
    assert (
        entry.after is not None
        and entry.after["version"] == 1
        and entry.after["theme"]["colors"]["primary"] == "#123456"
    )
    assert tn.branding.set(tenant.slug, {"colors": {"accent": "#654321"}}).brand.version == 2


def test_unreadable_colours_are_refused_unless_allowed(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    with pytest.raises(
        LowContrast, match=r"text on the background 1\.\d\d:1 \(text #cccccc on background #f7f8fa\)"
    ) as refused:
        tn.branding.set(tenant.slug, {"colors": {"text": "#cccccc"}})
    assert refused.value.problems[0].startswith("text on the background: text #cccccc on background #f7f8fa, 1.")
    assert str(refused.value).endswith("pass allow_low_contrast=True to save them anyway")
    assert tn.branding.get(tenant.slug).version == 0 and tn.branding.history(tenant.slug) == []  # nothing saved
    assert not [e for e in tn.audit.list(target_type="tenant", target=tenant.slug) if e.action.startswith("brand.")]

    change = tn.branding.set(tenant.slug, {"colors": {"text": "#cccccc"}}, allow_low_contrast=True)
    assert change.changed and change.brand.theme.colors.text == "#cccccc"
    assert {w.code for w in change.warnings} == {"contrast"}
    assert any("text on the background" in w.message for w in change.warnings)
    assert tn.branding.warnings(tn.branding.get(tenant.slug)) == list(change.warnings)
    # changes that leave the colours alone are not judged again; new colours are
    assert tn.branding.set(tenant.slug, {"product_name": "Pale"}, logo=png(rgba=b"\x48\x48\x48\xff")).changed
    with pytest.raises(LowContrast):
        tn.branding.set(tenant.slug, {"colors": {"accent": "#000001"}})
    # a readable palette (colour names too) needs no override
    fixed = tn.branding.set(tenant.slug, {"colors": {"text": "MidnightBlue", "primary": "darkslateblue"}})
    assert fixed.warnings == () and fixed.brand.theme.colors.text == "#191970" and fixed.brand.version == 3


def test_history_and_rollback(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    logo = png(rgba=b"\x49\x49\x49\xff")
    first = tn.branding.set(tenant.slug, {"colors": {"primary": "#123456"}, "product_name": "One"}, logo=logo).brand
    tn.branding.set(tenant.slug, {"colors": {"primary": "#654321"}, "product_name": "Two", "logo": None})
    tn.branding.reset(tenant.slug)
    versions = tn.branding.history(tenant.slug)
    assert [(v.version, v.message, v.actor) for v in versions] == [
        (3, "reset", "pytest"),
        (2, "", "pytest"),
        (1, "", "pytest"),
    ]
    assert (
        versions[1].theme["product_name"] == "Two"
        and versions[2].theme["logo"]["sha256"] == hashlib.sha256(logo).hexdigest()
    )
    assert [v.version for v in tn.branding.history(tenant.id, limit=1, before=3)] == [2]
    assert _asset_rows(tn, hashlib.sha256(logo).hexdigest()) == 1  # kept for the history

    back = tn.branding.rollback(tenant.slug, 1, message="the first one")
    assert back.changed and back.brand.version == 4
    assert back.brand.theme == first.theme and back.brand.product_name == "One"  # the logo too
    assert tn.branding.history(tenant.slug, limit=1)[0].message == "the first one"
    entry = tn.audit.list(target_type="tenant", target=tenant.slug)[0]
    assert entry.action == "brand.rollback" and entry.after is not None and entry.after["version"] == 4
    assert entry.after["message"] == "the first one" and entry.before is not None and entry.before["version"] == 3
    # the same again changes nothing; 0 is the defaults; a default message says where to
    assert not tn.branding.rollback(tenant.slug, 1).changed
    to_defaults = tn.branding.rollback(tenant.slug, 0)
    assert to_defaults.brand.version == 5 and to_defaults.brand.theme == Theme()
    assert tn.branding.history(tenant.slug, limit=1)[0].message == "rollback to version 0"

    with pytest.raises(NotFound, match="has no version 9 .versions up to 5."):
        tn.branding.rollback(tenant.slug, 9)
    with pytest.raises(InvalidInput):
        tn.branding.rollback(tenant.slug, -1)
    with pytest.raises(Conflict, match="is at version 5, not 4"):
        tn.branding.rollback(tenant.slug, 2, expected_version=4)
    with pytest.raises(NotFound, match="no versions yet"):
        tn.branding.rollback(make_tenant("brand").slug, 1)


def test_rollback_to_unreadable_colours_needs_the_override(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    tn.branding.set(tenant.slug, {"colors": {"primary": "#ffff00"}}, allow_low_contrast=True)
    tn.branding.set(tenant.slug, {"colors": {"primary": "#1864ab"}})
    with pytest.raises(LowContrast, match="on primary #ffff00"):
        tn.branding.rollback(tenant.slug, 1)
    assert tn.branding.get(tenant.slug).version == 2
    assert tn.branding.rollback(tenant.slug, 1, allow_low_contrast=True).brand.theme.colors.primary == "#ffff00"


def test_the_history_is_append_only(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    tn.branding.set(tenant.slug, {"product_name": "Kept"})
    with tn.admin() as conn:
        for statement in (
            "UPDATE tenantry.brand_versions SET message = 'x' WHERE tenant_id = %s",
            "DELETE FROM tenantry.brand_versions WHERE tenant_id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"), conn.transaction():
                conn.execute(statement, (tenant.id,))
    assert [v.message for v in tn.branding.history(tenant.slug)] == [""]


@pytest.mark.parametrize(
    ("changes", "images", "fragment"),
    [
        ({"colors": {"primary": "#000000"}, "fonts": {"body": "Inter; color: red"}}, {}, "fonts.body"),
        ({"colors": {"primary": "#000000", "text": "nope"}}, {}, "colors.text"),
        ({"colors": {"primary": "#000000"}}, {"logo": b"<svg onload=alert(1)></svg>"}, "SVG logos are refused"),
        ({"colors": {"primary": "#000000"}}, {"favicon": "jpeg"}, "favicon: the favicon is a JPEG image"),
        ({"colors": {"primary": "#000000"}}, {"logo": "misnamed"}, "holds a JPEG image, not PNG"),
        ({"colors": {"primary": "#000000"}}, {"logo": "oversized"}, "the limit is 512 KiB"),
        (
            {"colors": {"primary": "#000000"}, "email": {"sender_name": "Acme\r\nBcc: all@example.com"}},
            {"logo": "ok"},
            "email.sender_name",
        ),
        (
            {
                "colors": {"primary": "#000000"},
                "email": {"templates": {"w": {"subject": "{{ ''.__class__ }}", "text": "x"}}},
            },
            {"logo": "ok"},
            "email.templates.w: subject",
        ),
        (
            {
                "colors": {"primary": "#000000"},
                "logo": {"sha256": "0" * 64, "content_type": "image/png", "size": 1, "width": 1, "height": 1},
            },
            {},
            "upload the image itself",
        ),
    ],
)
def test_one_bad_field_saves_nothing(
    tn: Tenantry, make_tenant: Callable[..., Tenant], tmp_path: Path, changes: dict, images: dict, fragment: str
) -> None:
    tenant = make_tenant("brand")
    tn.branding.set(tenant.slug, {"colors": {"primary": "#111111"}}, logo=png(rgba=b"\x01\x01\x01\xff"))
    before = tn.branding.get(tenant.slug)
    fresh = png(rgba=b"\x09\x08\x07\xff")
    given = {}
    for key, kind in images.items():
        if kind == "jpeg":
            given[key] = pillow("JPEG", (32, 32))
        elif kind == "misnamed":
            (tmp_path / "logo.png").write_bytes(pillow("JPEG", (64, 64)))
            given[key] = tmp_path / "logo.png"
        elif kind == "oversized":
            (tmp_path / "big.png").write_bytes(fresh + b"\x00" * (600 * 1024))
            given[key] = tmp_path / "big.png"
        elif kind == "ok":
            given[key] = fresh
        else:
            given[key] = kind
    audit_before = len(tn.audit.list(target_type="tenant", target=tenant.slug))
    with pytest.raises(InvalidBrand, match=fragment):
        tn.branding.set(tenant.slug, changes, **given)
    after = tn.branding.get(tenant.slug)
    assert after.version == before.version and after.theme == before.theme
    assert _asset_rows(tn, hashlib.sha256(fresh).hexdigest()) == 0  # the new image was not stored either
    assert len(tn.audit.list(target_type="tenant", target=tenant.slug)) == audit_before


def test_identical_images_share_one_row_and_stay_for_the_history(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    a, b = make_tenant("brand"), make_tenant("brand")
    shared = png(rgba=b"\x42\x42\x42\xff")
    first = tn.branding.set(a.slug, logo=shared).brand.theme.logo
    second = tn.branding.set(b.slug, logo=Upload(shared, "same.png")).brand.theme.logo
    assert first is not None and second is not None and first.sha256 == second.sha256
    assert _asset_rows(tn, first.sha256) == 1
    # both move on: the image stays, their histories use it, and a rollback brings it back
    tn.branding.set(a.slug, logo=png(rgba=b"\x43\x43\x43\xff"))
    tn.branding.set(b.slug, {"logo": None})
    assert _asset_rows(tn, first.sha256) == 1
    assert tn.branding.get(b.slug).theme.logo is None
    assert tn.branding.rollback(b.slug, 1).brand.theme.logo == second
    with tn.tenant(b.slug):
        brand = tn.branding.current()
        assert tn.branding.asset(brand, second.filename) == ("image/png", shared)
    with tn.tenant(a.slug):  # a's brand no longer uses it: not served for a
        assert tn.branding.asset(tn.branding.current(), second.filename) is None


def test_reset_is_a_new_version_with_the_defaults(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    logo = tn.branding.set(tenant.slug, {"product_name": "X"}, logo=png(rgba=b"\x44\x44\x44\xff")).brand.theme.logo
    assert logo is not None
    reset = tn.branding.reset(tenant.slug)
    assert reset.changed and reset.brand.version == 2 and reset.brand.theme.logo is None
    assert reset.brand.theme.model_dump() == tn.branding.get(tenant.slug).theme.model_dump()
    assert _asset_rows(tn, logo.sha256) == 1  # version 1 still uses it
    again = tn.branding.reset(tenant.slug)
    assert not again.changed and again.brand.version == 2
    never = make_tenant("brand")
    assert not tn.branding.reset(never.slug).changed and tn.branding.get(never.slug).version == 0


def test_expected_version_guards_against_lost_updates(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    tn.branding.set(tenant.slug, {"colors": {"primary": "#000001"}})
    with pytest.raises(Conflict, match="is at version 1, not 0"):
        tn.branding.set(tenant.slug, {"colors": {"primary": "#000002"}}, expected_version=0)
    assert tn.branding.set(tenant.slug, {"colors": {"primary": "#000002"}}, expected_version=1).brand.version == 2


def test_concurrent_changes_of_different_fields_all_land(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    fields = ["primary", "secondary", "accent", "danger", "muted", "surface"]
    errors: list[BaseException] = []

    def change(name: str) -> None:
        try:
            tn.branding.set(tenant.slug, {"colors": {name: "#0a0b0c"}}, allow_low_contrast=True)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=change, args=(name,)) for name in fields]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    brand = tn.branding.get(tenant.slug)
    assert brand.version == len(fields)
    assert all(getattr(brand.theme.colors, name) == "#0a0b0c" for name in fields)


def test_unknown_and_deleted_tenants(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    with pytest.raises(TenantNotFound):
        tn.branding.set("no-such-tenant", {"product_name": "X"})
    with pytest.raises(TenantNotFound):
        tn.branding.get('a"; drop table tenantry.brands; --')
    tenant = make_tenant("brand")
    tn.tenants.delete(tenant.slug)
    with pytest.raises(TenantNotFound):
        tn.branding.set(tenant.id, {"product_name": "X"})


def test_a_slug_used_again_gets_a_brand_of_its_own(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    old = make_tenant("brand")
    tn.branding.set(old.slug, {"product_name": "Old Corp"}, logo=png(rgba=b"\x45\x45\x45\xff"))
    with tn.tenant(old.slug):
        assert tn.branding.current().product_name == "Old Corp"  # cached by id
    tn.tenants.delete(old.slug)
    new = tn.tenants.create(old.slug, name="New Corp")
    with tn.tenant(new.slug):
        brand = tn.branding.current()
    assert brand.tenant_id == new.id and brand.product_name == "New Corp" and brand.version == 0
    assert brand.theme.logo is None


def test_e_mail_renders_with_the_brand_and_cannot_inject_headers(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant("brand", name="Acme Corporation")
    tn.branding.set(
        tenant.slug,
        {
            "product_name": "Roadrunner",
            "email": {
                "sender_name": "Acme Support",
                "templates": {
                    "welcome": {
                        "subject": "Welcome to {{ product_name }}, {{ recipient.name }}",
                        "text": "Go: {{ action_url }}\n",
                        "html": '<p>Hi {{ recipient.name }}</p><a href="{{ action_url }}">go</a>',
                    },
                },
            },
        },
    )
    values = {
        "recipient": {"name": "Ada\r\nBcc: all@example.com <script>"},
        "action_url": "https://x/?a=1&b=2",
        "product_name": "Spoofed",
    }
    mail = tn.branding.render_email("welcome", values, tenant=tenant.slug)
    assert mail.sender_name == "Acme Support"
    assert mail.from_header("no-reply@acme.example") == "Acme Support <no-reply@acme.example>"
    assert mail.subject == "Welcome to Roadrunner, Ada Bcc: all@example.com <script>"  # one line; brand names win
    assert mail.text == "Go: https://x/?a=1&b=2\n"
    assert mail.html is not None and "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert 'href="https://x/?a=1&amp;b=2"' in mail.html
    with tn.tenant(tenant.slug):
        assert tn.branding.render_email("welcome", values).subject == mail.subject
    with pytest.raises(NotFound, match="no e-mail template 'invite' .templates: welcome."):
        tn.branding.render_email("invite", tenant=tenant.slug)


def test_preview_is_self_contained(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    logo = png(rgba=b"\x46\x46\x46\xff")
    tn.branding.set(
        tenant.slug,
        {
            "product_name": "Tom & Jerry <b>",
            "colors": {"primary": "#ff0"},
            "email": {"templates": {"w": {"subject": "s", "text": "t", "html": "<p>{{ product_name }}</p>"}}},
        },
        logo=logo,
        favicon=png(rgba=b"\x47\x47\x47\xff"),
        allow_low_contrast=True,
    )
    page = tn.branding.preview(tenant.slug)
    assert "--brand-primary: #ffff00;" in page
    assert "data:image/png;base64," in page and page.count("data:image/png;base64,") == 2
    assert "Tom &amp; Jerry &lt;b&gt;" in page and "Tom & Jerry <b>" not in page
    assert (
        'srcdoc="&lt;p&gt;Tom &amp;amp; Jerry &amp;lt;b&amp;gt;&lt;/p&gt;"' in page
    )  # escaped twice: html, then attribute
    assert "hard to read" in page


def test_the_upgrade_starts_each_history_at_the_brand_there_is(fresh_scratch: Any) -> None:
    """Catalog 0013 on a catalog without brand history: each brand's current version begins
    its history (the earlier ones were never kept), and running the migration again adds nothing."""
    from importlib import resources

    from psycopg import sql

    from tenantry.db.catalog import migrate_catalog

    tn = Tenantry(fresh_scratch.settings(), actor="pytest")
    try:
        tn.schema.init()
        tenant = tn.tenants.create("up-brand")
        tn.branding.set(tenant.slug, {"product_name": "One"}, logo=png(rgba=b"\x4a\x4a\x4a\xff"))
        tn.branding.set(tenant.slug, {"product_name": "Two"})
        # the catalog as version 11 left it, with this brand at version 2
        with psycopg.connect(fresh_scratch.url, autocommit=True) as conn, conn.transaction():
            conn.execute(
                "DROP TABLE tenantry.brand_versions; DROP FUNCTION tenantry.refuse_brand_history_change();"
                " DELETE FROM tenantry.schema_migrations WHERE version = 13"
            )
            applied = migrate_catalog(
                conn,
                owner=fresh_scratch.owner,
                runtime=fresh_scratch.runtime,
                reader=fresh_scratch.reader,
                pooled_schema=tn.settings.pooled_schema,
                passwords={},
            )
        assert applied == ["0013_brand_history.sql"]
        [kept] = tn.branding.history(tenant.slug)
        assert (kept.version, kept.message, kept.theme["product_name"]) == (
            2,
            "as it was when brand history began",
            "Two",
        )
        # rerun by hand (as a catalog that got it under another number would): nothing changes
        text = resources.files("tenantry.db").joinpath("sql/catalog/0013_brand_history.sql").read_text()
        with psycopg.connect(fresh_scratch.url, autocommit=True) as conn, conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(fresh_scratch.owner)))
            conn.execute(sql.SQL(text).format())
        assert [v.version for v in tn.branding.history(tenant.slug)] == [2]
        assert tn.branding.set(tenant.slug, {"product_name": "Three"}).brand.version == 3
        assert tn.branding.rollback(tenant.slug, 2).brand.product_name == "Two"
    finally:
        tn.close()
