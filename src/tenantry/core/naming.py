"""Validation of names that reach SQL or the file system: tenant slugs, plan and plugin names.

Pure: no driver, no I/O. A slug is a DNS label (RFC 1123): lowercase ASCII letters, digits and
``-``, 1 to 63 characters, neither starting nor ending with ``-``. Anything else, including
unicode look-alikes, is refused rather than normalised, so a slug always means what it shows.
That includes their ASCII spelling: a label with ``--`` in positions 3 and 4 is reserved by
RFC 5891 for encodings such as IDNA's A-labels (``xn--n1aebk`` shows as Cyrillic "сору" in a
browser's address bar, a look-alike of tenant ``copy``), so none is a slug.
"""

from __future__ import annotations

import re

from tenantry.errors import InvalidInput, InvalidSlug

__all__ = ["PLUGIN_NAME", "RESERVED_SLUGS", "check_plugin_name", "is_slug", "validate_plan_name", "validate_slug"]

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# a slug that reads as a tenant id would make `tn.tenant(key)` ambiguous
_UUID_SHAPED = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
_PLAN = re.compile(r"[a-z][a-z0-9_-]{0,62}")

#: Names that collide with PostgreSQL, tenantry itself, or common web hosts.
RESERVED_SLUGS: frozenset[str] = frozenset(
    {
        "admin",
        "api",
        "app",
        "default",
        "information-schema",
        "localhost",
        "postgres",
        "public",
        "root",
        "static",
        "system",
        "template0",
        "template1",
        "tenantry",
        "www",
    }
)


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is a usable tenant slug, else raise :class:`InvalidSlug`.

    >>> validate_slug("acme-eu")
    'acme-eu'
    """
    if not isinstance(slug, str):
        raise InvalidSlug("tenant slug must be a string")
    shown = slug if len(slug) <= 70 else slug[:67] + "..."
    if not slug:
        raise InvalidSlug("tenant slug must not be empty")
    if len(slug) > 63:
        raise InvalidSlug(f"tenant slug {shown!r} is longer than 63 characters")
    if not _SLUG.fullmatch(slug):
        raise InvalidSlug(
            f"tenant slug {shown!r} is not a DNS label: use lowercase a-z, 0-9 and '-', not starting or ending with '-'"
        )
    if slug[2:4] == "--":
        raise InvalidSlug(_encoded_label(slug))
    if slug in RESERVED_SLUGS or slug.startswith(("pg-", "tenantry-")):
        raise InvalidSlug(f"tenant slug {slug!r} is reserved")
    if _UUID_SHAPED.fullmatch(slug):
        raise InvalidSlug(f"tenant slug {slug!r} looks like a tenant id; choose a name")
    return slug


def _encoded_label(slug: str) -> str:
    if slug.startswith("xn--"):
        try:
            shown_as = f", shown by browsers as {slug[4:].encode().decode('punycode')!r}"
        except UnicodeError:
            shown_as = ""
        return (
            f"tenant slug {slug!r} is an IDNA A-label (punycode){shown_as}, which can pass for"
            " another tenant's name; choose a plain ASCII name"
        )
    return (
        f"tenant slug {slug!r} has '--' in positions 3-4, which RFC 5891 reserves for encoded"
        " (internationalised) labels; choose a name without it there"
    )


def is_slug(value: str) -> bool:
    """Whether ``value`` is a usable slug (no exception)."""
    try:
        validate_slug(value)
    except InvalidSlug:
        return False
    return True


def validate_plan_name(name: str) -> str:
    """Return ``name`` if it is a usable plan name, else raise :class:`InvalidInput`."""
    if not isinstance(name, str) or not _PLAN.fullmatch(name):
        raise InvalidInput(f"plan name {name!r} must start with a letter and use a-z, 0-9, '_' or '-' (max 63)")
    return name


#: a plugin's name: a lowercase label (it names a URL segment, a config section, table prefixes)
PLUGIN_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


def check_plugin_name(name: object) -> str:
    """``name`` if it can name a plugin, else :class:`InvalidInput` saying what can."""
    if not isinstance(name, str) or not PLUGIN_NAME.fullmatch(name):
        raise InvalidInput(
            f"plugin name {str(name)[:60]!r} must be 1-40 characters: a-z, 0-9 and '-', starting with a letter"
        )
    return name
