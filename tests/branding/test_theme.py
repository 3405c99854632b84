"""The theme: validation of every field against injection, merge semantics, warnings, and the
stylesheet it renders. Pure: no database."""

from __future__ import annotations

import re
import uuid

import pytest

from tenantry import InvalidBrand, Theme
from tenantry.branding.css import render_css, stylesheet
from tenantry.branding.theme import apply_changes, theme_warnings


def refused(changes: dict, fragment: str, theme: Theme | None = None) -> None:
    with pytest.raises(InvalidBrand) as caught:
        apply_changes(theme or Theme(), changes)
    message = str(caught.value)
    assert fragment in message, message
    assert "\n" not in message


# -- colours ----------------------------------------------------------------------------------
def test_colours_are_stored_as_hex() -> None:
    theme = apply_changes(Theme(), {"colors": {"primary": "rgb(10, 20, 30)", "accent": "#ABC"}})
    assert theme.colors.primary == "#0a141e" and theme.colors.accent == "#aabbcc"
    assert theme.colors.text == Theme().colors.text  # the rest kept


@pytest.mark.parametrize("bad", ["reddish", "#fff;}*{color:red", "url(x)", 42, None, ["#fff"]])
def test_bad_colours_name_the_field(bad: object) -> None:
    refused({"colors": {"primary": bad}}, "colors.primary:")


def test_unknown_colours_and_fields_are_refused() -> None:
    refused({"colors": {"primray": "#fff"}}, "colors.primray: unknown field")
    refused({"colours": {}}, "colours: unknown field")
    refused({"css": "body{}"}, "css: unknown field")


# -- fonts ------------------------------------------------------------------------------------
def test_font_stacks_are_lists_of_safe_names() -> None:
    theme = apply_changes(
        Theme(), {"fonts": {"body": "Inter,  Segoe UI , SANS-SERIF", "mono": ["JetBrains Mono", "monospace"]}}
    )
    assert theme.fonts.body == ("Inter", "Segoe UI", "sans-serif")
    assert theme.fonts.mono == ("JetBrains Mono", "monospace")
    css = render_css(theme)
    assert '--brand-font-body: "Inter", "Segoe UI", sans-serif;' in css
    assert '--brand-font-mono: "JetBrains Mono", monospace;' in css


@pytest.mark.parametrize(
    "bad",
    [
        '"Inter"',
        "'Inter'",
        "Inter; color: red",
        "Inter}body{display:none",
        "Inter{",
        "url(evil)",
        "Inter\\",
        "a\\22 b",
        "</style><script>alert(1)</script>",
        "Inter /* x */",
        "Inter:hover",
        "-apple-system",
        "1Password",
        "Inter  Bold",
        "inherit",
        "x" * 65,
        "",
        "Inter,",
        ",",
        "Ïnter",
        "Inter\nBold",
        "Inter\x00",
        "expression(alert(1))",
        "@import",
        "a" + ",b" * 10,
    ],
)
def test_font_injection_attempts_are_refused(bad: str) -> None:
    refused({"fonts": {"body": bad}}, "fonts.body:")


def test_fonts_must_be_text() -> None:
    refused({"fonts": {"heading": 12}}, "fonts.heading:")
    refused({"fonts": {"heading": ["Inter", 3]}}, "fonts.heading:")


# -- names ------------------------------------------------------------------------------------
def test_product_name() -> None:
    assert apply_changes(Theme(), {"product_name": "  Roadrunner <Pro>  "}).product_name == "Roadrunner <Pro>"
    refused({"product_name": ""}, "product_name: the product name is 1 to 80 characters")
    refused({"product_name": "x" * 81}, "1 to 80 characters")
    refused({"product_name": "Acme\nEvil"}, "line breaks or control characters")
    refused({"product_name": "Acme\u202etxt.exe"}, "line breaks or control characters")
    assert apply_changes(Theme(product_name="X"), {"product_name": None}).product_name is None


@pytest.mark.parametrize(
    "bad",
    [
        "Acme\r\nBcc: everyone@example.com",
        "Acme\nX-Evil: 1",
        "Acme\rX",
        "Acme\x00",
        "Acme\u2028Bcc: x",
        "Acme <evil@example.com>",
        "support@acme.example",
        "x" * 79,
    ],
)
def test_sender_name_cannot_inject_headers_or_addresses(bad: str) -> None:
    refused({"email": {"sender_name": bad}}, "email.sender_name:")


# -- e-mail templates ---------------------------------------------------------------------------
def _template(**parts: str) -> dict:
    return {"email": {"templates": {"welcome": {"subject": "Hi", "text": "Hello", **parts}}}}


def test_templates_that_compile_and_render_are_kept() -> None:
    theme = apply_changes(
        Theme(),
        _template(
            subject="Welcome to {{ product_name }}",
            text="Hello {{ recipient.name|default('there') }}{% if action_url %}: {{ action_url }}{% endif %}",
            html="<p>{% for item in data.items_list %}{{ item|upper }}{% else %}none{% endfor %}</p>",
        ),
    )
    assert set(theme.email.templates) == {"welcome"}


@pytest.mark.parametrize(
    ("part", "source", "fragment"),
    [
        ("subject", "{{ product_name", "line 1: unexpected end of template"),
        ("text", "{% if x %}{% endif %}", "unknown variable 'x'"),
        ("text", "{% for a in data %}", "Unexpected end of template"),
        ("html", "{{ ''.__class__ }}", "attribute '__class__' is not allowed"),
        ("html", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
        ("html", "{{ recipient['__init__'] }}", "item '__init__' is not allowed"),
        ("html", "{{ recipient.name.__globals__ }}", "not allowed"),
        ("html", "{{ cycler.__init__.__globals__.os }}", "not allowed"),
        ("html", "{{ cycler }}", "unknown variable 'cycler'"),
        ("html", "{{ lipsum() }}", "calling a function or method is not allowed"),
        ("html", "{{ range(100000)|list }}", "not allowed"),
        ("html", "{{ range(100000) }}", "calling a function or method is not allowed"),
        ("html", "{{ recipient.name.format(1) }}", "calling a function or method is not allowed"),
        ("html", "{{ 'a' * 1000000000 }}", "arithmetic (*) is not allowed"),
        ("html", "{{ 10 ** 10 ** 10 }}", "arithmetic (**) is not allowed"),
        ("html", "{{ recipient.name|safe }}", "filter 'safe' is not allowed"),
        ("html", "{{ recipient|attr('__class__') }}", "filter 'attr' is not allowed"),
        ("html", "{{ data|map('upper') }}", "filter 'map' is not allowed"),
        ("html", "{% set x = 1 %}", "{% set %} is not allowed"),
        ("html", "{% include 'other.html' %}", "{% include %} is not allowed"),
        ("html", "{% extends 'base.html' %}", "{% extends %} is not allowed"),
        ("html", "{% import 'm.html' as m %}", "{% import %} is not allowed"),
        ("html", "{% macro m() %}x{% endmacro %}", "{% macro %} is not allowed"),
        ("html", "{% autoescape false %}{{ recipient.name }}{% endautoescape %}", "{% autoescape %} is not allowed"),
        ("html", "{% for x in data recursive %}{{ loop(x) }}{% endfor %}", "not allowed"),
        ("html", "{{ self }}", "unknown variable 'self'"),
        ("html", "{{ config }}", "unknown variable 'config'"),
        ("text", "x" * 20000, "the limit is 16384"),
    ],
)
def test_bad_and_hostile_templates_are_refused(part: str, source: str, fragment: str) -> None:
    refused(_template(**{part: source}), f"email.templates.welcome: {part}")
    refused(_template(**{part: source}), fragment)


def test_template_names_are_checked() -> None:
    refused({"email": {"templates": {"Bad Name": {"subject": "s", "text": "t"}}}}, "template name 'Bad Name'")
    refused({"email": {"templates": {"w": {"subject": "s"}}}}, "email.templates.w.text: Field required")


def test_templates_merge_by_name_and_none_removes() -> None:
    theme = apply_changes(
        Theme(), {"email": {"templates": {"a": {"subject": "A", "text": "a"}, "b": {"subject": "B", "text": "b"}}}}
    )
    theme = apply_changes(
        theme, {"email": {"sender_name": "Acme", "templates": {"a": None, "c": {"subject": "C", "text": "c"}}}}
    )
    assert sorted(theme.email.templates) == ["b", "c"] and theme.email.sender_name == "Acme"


# -- images are uploaded, never referenced --------------------------------------------------------
def test_logo_and_favicon_cannot_be_set_by_reference() -> None:
    someone_elses = {"sha256": "a" * 64, "content_type": "image/png", "size": 10, "width": 32, "height": 32}
    refused({"logo": someone_elses}, "logo: upload the image itself")
    refused({"favicon": someone_elses}, "favicon: upload the image itself")
    refused({"logo": "a" * 64}, "logo: upload the image itself")


def test_changes_must_be_an_object() -> None:
    refused(["colors"], "JSON object")  # type: ignore[arg-type]


# -- warnings ---------------------------------------------------------------------------------------
def test_the_defaults_earn_no_warnings() -> None:
    assert theme_warnings(Theme()) == []


def test_unreadable_text_is_a_warning_with_the_ratio() -> None:
    theme = apply_changes(Theme(), {"colors": {"text": "#999999", "primary": "#ffff00"}})
    found = {w.message.split(":")[0]: w for w in theme_warnings(theme)}
    assert set(found) == {
        "text on the background",
        "text on surfaces",
        "text on the primary colour",
        "links in the primary colour on the background",
    }
    assert found["text on surfaces"].ratio == pytest.approx(2.85, abs=0.01)
    assert all(w.code == "contrast" and "below 4.5:1" in w.message for w in found.values())


def test_a_font_stack_without_a_generic_family_is_a_warning() -> None:
    theme = apply_changes(Theme(), {"fonts": {"body": "Inter"}})
    assert [w.code for w in theme_warnings(theme)] == ["font_fallback"]


# -- the stylesheet ---------------------------------------------------------------------------------
def test_css_holds_every_token_and_nothing_else() -> None:
    theme = apply_changes(Theme(), {"colors": {"primary": "#123456"}})
    css = render_css(theme)
    tokens = dict(re.findall(r"^  (--brand-[a-z-]+): (.+);$", css, re.M))
    assert tokens["--brand-primary"] == "#123456"
    assert set(tokens) == {
        "--brand-primary",
        "--brand-on-primary",
        "--brand-secondary",
        "--brand-background",
        "--brand-surface",
        "--brand-text",
        "--brand-muted",
        "--brand-accent",
        "--brand-danger",
        "--brand-font-body",
        "--brand-font-heading",
        "--brand-font-mono",
    }
    for forbidden in ("</", "url(", "@import", "\\", ";}", "expression"):
        assert forbidden not in css


def test_etags_differ_between_tenants_even_for_the_same_theme() -> None:
    theme = Theme()
    a, b = stylesheet(uuid.uuid4(), 1, theme), stylesheet(uuid.uuid4(), 1, theme)
    assert a.css == b.css and a.etag != b.etag and a.filename != b.filename
    assert re.fullmatch(r'"[0-9a-f]{16}"', a.etag) and re.fullmatch(r"theme\.[0-9a-f]{16}\.css", a.filename)
    changed = stylesheet(a.tenant_id, 2, apply_changes(theme, {"colors": {"primary": "#000"}}))
    assert changed.etag != a.etag
