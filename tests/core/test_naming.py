import pytest

from tenantry import RESERVED_SLUGS, InvalidSlug, validate_slug
from tenantry.core.naming import validate_plan_name
from tenantry.errors import InvalidInput


@pytest.mark.parametrize("slug", ["a", "acme", "acme-eu", "a1", "0abc", "x" * 63, "a-b-c"])
def test_valid_slugs(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "-acme",
        "acme-",
        "Acme",
        "ac me",
        "a_b",
        'a"; drop table tenants; --',
        "../x",
        "a/b",
        "аcme",  # Cyrillic а
        "acme\u200b",  # zero-width space
        "ａcme",  # full-width a
        "x" * 64,
        "acme.eu",
        "a\x00b",
    ],
)
def test_invalid_slugs(slug: str) -> None:
    with pytest.raises(InvalidSlug):
        validate_slug(slug)


@pytest.mark.parametrize("slug", ["public", "tenantry", "postgres", "pg-catalog", "tenantry-x", "www", "admin"])
def test_reserved_slugs(slug: str) -> None:
    with pytest.raises(InvalidSlug, match="reserved"):
        validate_slug(slug)


def test_pg_catalog_is_not_a_dns_label() -> None:
    with pytest.raises(InvalidSlug):
        validate_slug("pg_catalog")


def test_long_slug_message_is_one_short_line() -> None:
    with pytest.raises(InvalidSlug) as info:
        validate_slug("x" * 500)
    assert "\n" not in str(info.value) and len(str(info.value)) < 160


def test_reserved_set_is_lowercase_dns_labels() -> None:
    assert all(s == s.lower() for s in RESERVED_SLUGS)


def test_non_string_slug() -> None:
    with pytest.raises(InvalidSlug):
        validate_slug(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["free", "business-eu", "pro_2"])
def test_plan_names(name: str) -> None:
    assert validate_plan_name(name) == name


@pytest.mark.parametrize("name", ["", "Free", "1x", "a b", "a;drop"])
def test_bad_plan_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_plan_name(name)


@pytest.mark.parametrize(
    ("slug", "shown"),
    [("xn--n1aebk", "сору"), ("xn--80ak6aa92e", "аррӏе"), ("xn--zz", None)],
)
def test_idna_a_labels_are_refused_naming_what_browsers_show(slug: str, shown: str | None) -> None:
    # xn--n1aebk is Cyrillic "сору": in an address bar it passes for tenant "copy"
    with pytest.raises(InvalidSlug, match="IDNA A-label") as info:
        validate_slug(slug)
    if shown is not None:  # Cyrillic, not the Latin it looks like
        assert f"shown by browsers as {shown!r}" in str(info.value) and not shown.isascii()


@pytest.mark.parametrize("slug", ["ab--c", "zz--top", "r3--x", "ab---c"])
def test_double_hyphen_in_positions_3_and_4_is_reserved(slug: str) -> None:
    with pytest.raises(InvalidSlug, match=r"'--' in positions 3-4.*RFC 5891"):
        validate_slug(slug)


@pytest.mark.parametrize("slug", ["a--b", "abc--d", "copy", "x-n-foo", "xn-a"])
def test_double_hyphens_elsewhere_stay_valid(slug: str) -> None:
    assert validate_slug(slug) == slug
