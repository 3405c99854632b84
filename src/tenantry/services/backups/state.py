"""A tenant's catalog state in an archive: what it is, and how a restore writes it back.

The archive keeps the tenant's profile (slug, name, plan, tier, status) in its manifest, and
in ``catalog.json`` its config layer as stored (secret values stay sealed: the archive never
holds a secret in the clear), its plugin switches, its brand with its images' bytes, and its
domains (:func:`tenantry.db.catalog.backups.read_state`).

A restore writes the config layer, plugin switches and brand as new versions of their
histories. Sealed config values are bound to the tenant they were sealed for, so a clone
gets them opened with the configured keys and sealed again for the new tenant
(:func:`reseal`). Domains are not restored: a hostname belongs to one tenant (a clone
gets none; an in-place restore keeps the tenant's). Feature flags are global definitions
that target tenants by rules; there are no per-tenant flag overrides to keep.
"""

from __future__ import annotations

from typing import Any

from tenantry.core.secrets import Keyring, is_sealed, is_sealed_anywhere
from tenantry.errors import BackupInvalid

__all__ = ["reseal"]


def _walk(value: Any, path: tuple[str, ...], keyring: Keyring, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, (*path, k), keyring, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, "[]"), keyring, old, new) for v in value]
    if is_sealed(value):
        where = ".".join(path)
        return keyring.seal(keyring.open(value, f"{old}:{where}"), f"{new}:{where}")
    return value


def reseal(
    config: dict[str, Any] | None, keyring: Keyring | None, old_scope: str, new_scope: str
) -> dict[str, Any] | None:
    """``config`` (a layer as :func:`read_state` keeps it) with its sealed values sealed for
    ``new_scope`` instead of ``old_scope`` (``tenant:<id>``)."""
    if config is None or old_scope == new_scope:
        return config
    if not (is_sealed_anywhere(config["document"]) or is_sealed_anywhere(config["overrides"])):
        return config
    if keyring is None:
        raise BackupInvalid(
            "the archive's config holds secret values, sealed for the tenant it was taken from: set"
            " TENANTRY_SECRET_KEYS to the keys that sealed them to restore it into another tenant"
        )
    document = _walk(config["document"], (), keyring, old_scope, new_scope)
    overrides = {
        key: {**entry, "value": _walk(entry.get("value"), tuple(key.split(".")), keyring, old_scope, new_scope)}
        for key, entry in config["overrides"].items()
    }
    return {**config, "document": document, "overrides": overrides}
