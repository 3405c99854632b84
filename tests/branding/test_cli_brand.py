"""``tenantry brand``: set, show, preview, reset, history and rollback; bad input (unreadable
colours too) is one line, a non-zero exit, and nothing saved."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantry import Tenant, Tenantry
from tests.branding.images import pillow, png


def test_set_show_reset(cli, tn: Tenantry, make_tenant: Callable[..., Tenant], tmp_path: Path) -> None:
    tenant = make_tenant("brand")
    (tmp_path / "logo.png").write_bytes(png(rgba=b"\x21\x22\x23\xff"))
    code, out, err = cli(
        "brand",
        "set",
        "--tenant",
        tenant.slug,
        "--primary",
        "rgb(18, 52, 86)",
        "--font-body",
        "Inter, sans-serif",
        "--product-name",
        "Roadrunner",
        "--logo",
        str(tmp_path / "logo.png"),
    )
    assert code == 0 and err == "" and f"saved the brand of {tenant.slug}: version 1" in out
    code, out, _ = cli("brand", "show", "--tenant", tenant.slug, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["version"] == 1 and shown["product_name"] == "Roadrunner"
    assert shown["theme"]["colors"]["primary"] == "#123456" and shown["theme"]["fonts"]["body"] == [
        "Inter",
        "sans-serif",
    ]
    assert shown["theme"]["logo"]["content_type"] == "image/png" and shown["warnings"] == []
    code, out, _ = cli("brand", "show", "--tenant", tenant.slug)
    assert code == 0 and "#123456" in out and "image/png 32x32" in out
    code, out, _ = cli("brand", "set", "--tenant", tenant.slug, "--primary", "#123456")
    assert code == 0 and "unchanged (version 1)" in out
    code, out, _ = cli("brand", "reset", "--tenant", tenant.slug, "--json")
    reset = json.loads(out)
    assert code == 0 and reset["changed"] and reset["brand"]["version"] == 2 and reset["brand"]["theme"]["logo"] is None


def test_unreadable_colours_are_refused_unless_allowed(cli, tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    code, out, err = cli("brand", "set", "--tenant", tenant.slug, "--primary", "#ffff00")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert (
        err.startswith("error: refused: these colours are hard to read") and "text on the primary colour 1.07:1" in err
    )
    assert err.rstrip().endswith("pass --allow-low-contrast to save them anyway")
    assert tn.branding.get(tenant.slug).version == 0  # nothing saved
    code, out, err = cli("brand", "set", "--tenant", tenant.slug, "--primary", "#ffff00", "--json")
    refused = json.loads(err)
    assert code == 2 and out == "" and refused["code"] == "low-contrast" and refused["exit"] == 2

    code, out, err = cli("brand", "set", "--tenant", tenant.slug, "--primary", "#ffff00", "--allow-low-contrast")
    assert code == 0 and "version 1" in out
    assert "warning: text on the primary colour: hard to read" in err and "1.07:1" in err
    # what does not touch the colours is not judged again (the override was given once)
    code, out, err = cli("brand", "set", "--tenant", tenant.slug, "--product-name", "Yellow", "--json")
    change = json.loads(out)  # stdout stays JSON; the warnings are in it and on stderr
    assert code == 0 and {w["code"] for w in change["warnings"]} == {"contrast"} and "warning:" in err
    code, _, err = cli("brand", "show", "--tenant", tenant.slug)
    assert code == 0 and "text on the primary colour: hard to read" in err
    # a readable palette needs no override; a colour name is a colour
    code, out, err = cli("brand", "set", "--tenant", tenant.slug, "--primary", "navy", "--json")
    assert code == 0 and json.loads(out)["brand"]["theme"]["colors"]["primary"] == "#000080", err


def test_history_and_rollback(cli, tn: Tenantry, make_tenant: Callable[..., Tenant], tmp_path: Path) -> None:
    tenant = make_tenant("brand")
    code, out, _ = cli("brand", "history", "--tenant", tenant.slug)
    assert code == 0 and "no versions yet" in out
    (tmp_path / "logo.png").write_bytes(png(rgba=b"\x61\x62\x63\xff"))
    assert (
        cli("brand", "set", "--tenant", tenant.slug, "--primary", "darkred", "--logo", str(tmp_path / "logo.png"))[0]
        == 0
    )
    assert cli("brand", "set", "--tenant", tenant.slug, "--primary", "#123456", "--product-name", "Two")[0] == 0
    assert cli("brand", "reset", "--tenant", tenant.slug)[0] == 0
    code, out, _ = cli("brand", "history", "--tenant", tenant.slug, "--json")
    versions = json.loads(out)
    assert code == 0 and [v["version"] for v in versions] == [3, 2, 1]
    assert [v["message"] for v in versions] == ["reset", "", ""] and versions[1]["theme"]["product_name"] == "Two"
    assert all(v["actor"] and v["tenant"] == tenant.slug for v in versions)
    code, out, _ = cli("brand", "history", "--tenant", tenant.slug, "--limit", "1")
    assert code == 0 and "#8b0000" not in out and "reset" in out

    code, out, err = cli("brand", "rollback", "--tenant", tenant.slug, "--to", "1", "-m", "back to red")
    assert code == 0 and f"rolled back the brand of {tenant.slug} to version 1: now version 4" in out, err
    brand = tn.branding.get(tenant.slug)
    assert (
        brand.version == 4 and brand.theme.colors.primary == "#8b0000" and brand.theme.logo is not None
    )  # the logo too
    assert tn.branding.history(tenant.slug, limit=1)[0].message == "back to red"
    code, out, _ = cli("brand", "rollback", "--tenant", tenant.slug, "--to", "1")
    assert code == 0 and "unchanged (version 4)" in out
    code, out, err = cli("brand", "rollback", "--tenant", tenant.slug, "--to", "9")
    assert code == 6 and out == "" and "has no version 9 (versions up to 4)" in err and err.count("\n") == 1
    code, _, err = cli("brand", "rollback", "--tenant", tenant.slug)
    assert code == 2 and "--to" in err
    code, _, err = cli("brand", "rollback", "--tenant", tenant.slug, "--to", "2", "--expect-version", "3")
    assert code == 7 and "is at version 4, not 3" in err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--primary", "bluish"], "colors.primary: 'bluish' is not a colour"),
        (["--font-body", "Inter; } body { display: none"], "fonts.body:"),
        (["--font-heading", '"Inter"'], "without quotes"),
        (["--sender-name", "Acme\r\nBcc: all@example.com"], "email.sender_name"),
        (["--product-name", ""], "product_name"),
        (["--logo", "{svg}"], "SVG logos are refused"),
        (["--logo", "{misnamed}"], "'logo.png' holds a JPEG image, not PNG"),
        (["--logo", "{big}"], "the limit is 512 KiB"),
        (["--logo", "{missing}"], "cannot read"),
        (["--favicon", "{jpeg}"], "the favicon is a JPEG image; it must be PNG or ICO"),
        (["--logo", "{ok}", "--remove-logo"], "contradict"),
        (["--from-json", "{badjson}"], "is not JSON"),
        (["--from-json", "{template}"], "email.templates.welcome: html"),
        (["--from-json", "{byref}"], "upload the image itself"),
        (["--expect-version", "0"], "is at version 1, not 0"),
    ],
)
def test_bad_input_is_one_line_and_saves_nothing(
    cli, tn: Tenantry, make_tenant: Callable[..., Tenant], tmp_path: Path, extra: list[str], fragment: str
) -> None:
    tenant = make_tenant("brand")
    tn.branding.set(tenant.slug, {"colors": {"accent": "#010203"}})
    files = {
        "svg": ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        "misnamed": ("logo.png", pillow("JPEG", (64, 64))),
        "big": ("big.png", png() + b"\x00" * (513 * 1024)),
        "jpeg": ("favicon.jpg", pillow("JPEG", (32, 32))),
        "ok": ("ok.png", png(rgba=b"\x31\x32\x33\xff")),
        "badjson": ("theme.json", b'{"colors": {"primary": "#fff",}}'),
        "template": (
            "theme.json",
            json.dumps(
                {
                    "email": {
                        "templates": {"welcome": {"subject": "hi", "text": "hi", "html": "{{ ''.__class__.__mro__ }}"}}
                    }
                }
            ).encode(),
        ),
        "byref": (
            "theme.json",
            json.dumps(
                {"logo": {"sha256": "0" * 64, "content_type": "image/png", "size": 1, "width": 1, "height": 1}}
            ).encode(),
        ),
    }
    args = []
    for arg in extra:
        if arg.startswith("{") and arg.endswith("}"):
            key = arg[1:-1]
            if key == "missing":
                arg = str(tmp_path / "nowhere.png")
            else:
                name, data = files[key]
                (tmp_path / name).write_bytes(data)
                arg = str(tmp_path / name)
        args.append(arg)
    code, out, err = cli("brand", "set", "--tenant", tenant.slug, "--primary", "#0a0b0c", *args)
    assert code in (2, 7) and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err
    brand = tn.branding.get(tenant.slug)
    assert brand.version == 1 and brand.theme.colors.primary == "#3b5bdb"  # the good --primary was not saved either


def test_from_json_with_images_relative_to_the_file(
    cli, tn: Tenantry, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant("brand")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "logo.webp").write_bytes(pillow("WEBP", (120, 40)))
    (tmp_path / "img" / "icon.ico").write_bytes(pillow("ICO", (32, 32)))
    (tmp_path / "theme.json").write_text(
        json.dumps(
            {
                "product_name": "From JSON",
                "colors": {"primary": "#223344", "text": "#000"},
                "logo": "img/logo.webp",
                "favicon": "img/icon.ico",
                "email": {
                    "sender_name": "JSON Support",
                    "templates": {"welcome": {"subject": "Hi {{ recipient.name }}", "text": "t"}},
                },
            }
        )
    )
    code, out, err = cli(
        "brand",
        "set",
        "--tenant",
        tenant.slug,
        "--from-json",
        str(tmp_path / "theme.json"),
        "--primary",
        "#334455",
        "--json",
    )
    assert code == 0, err
    theme = json.loads(out)["brand"]["theme"]
    assert theme["colors"]["primary"] == "#334455" and theme["colors"]["text"] == "#000000"  # options win
    assert theme["logo"]["content_type"] == "image/webp" and theme["logo"]["width"] == 120
    assert theme["favicon"]["content_type"] == "image/x-icon"
    assert set(theme["email"]["templates"]) == {"welcome"}


def test_nothing_to_change_and_unknown_tenant(cli, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant("brand")
    code, _, err = cli("brand", "set", "--tenant", tenant.slug)
    assert code == 2 and "nothing to change" in err and err.count("\n") == 1
    code, _, err = cli("brand", "show", "--tenant", "nobody-here")
    assert code == 6 and "no tenant" in err and err.count("\n") == 1
    code, _, err = cli("brand", "set", "--primary", "#fff")
    assert code == 2 and "--tenant" in err


def test_preview_writes_one_self_contained_page(
    cli, tn: Tenantry, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant("brand")
    logo = png(rgba=b"\x51\x52\x53\xff")
    tn.branding.set(tenant.slug, {"product_name": "Preview Co", "colors": {"primary": "#5f3dc4"}}, logo=logo)
    out_file = tmp_path / "preview.html"
    code, out, _ = cli("brand", "preview", "--tenant", tenant.slug, "--out", str(out_file))
    assert code == 0 and out.strip() == str(out_file.resolve())
    page = out_file.read_text()
    assert "--brand-primary: #5f3dc4;" in page and "Preview Co" in page
    import base64

    assert f"data:image/png;base64,{base64.b64encode(logo).decode()}" in page
    assert "http://" not in page and "https://" not in page.replace("https://acme.example.com", "")  # nothing fetched
    code, out, _ = cli("brand", "preview", "--tenant", tenant.slug, "--out", str(tmp_path / "nodir" / "x.html"))
    assert code == 2 and out == ""
