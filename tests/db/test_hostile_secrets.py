"""Hostile: the runtime role reading stored secrets (issue 11). The catalog's config tables are
out of its reach, and what they hold for a secret field is sealed anyway, so even a role that
could read them would find no plain value. Each defence has a negative control."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql
from pydantic import BaseModel, SecretStr

from tenantry import Tenant, Tenantry
from tenantry.core.secrets import SEALED_PREFIX
from tests.support import Scratch

STORES = {
    "layers": "SELECT document::text FROM tenantry.config_layers WHERE tenant_id = %(t)s",
    "history": "SELECT document::text FROM tenantry.config_versions WHERE tenant_id = %(t)s",
    "audit": "SELECT after::text FROM tenantry.audit_log WHERE target = %(slug)s AND action = 'config.set'",
}


class Vault(BaseModel):
    api_key: SecretStr | None = None
    note: str = ""


@pytest.mark.parametrize("store", list(STORES))
def test_the_runtime_role_cannot_read_stored_secrets_and_they_are_sealed(
    scratch: Scratch, tn: Tenantry, make_tenant: Callable[..., Tenant], store: str
) -> None:
    vault = Tenantry(scratch.settings(), config=Vault, actor="pytest-hostile")
    try:
        tenant = make_tenant("vault")
        plain = "sk_live_" + secrets.token_hex(16)
        vault.config.set("api_key", plain, tenant=tenant.slug)
    finally:
        vault.close()
    params = {"t": tenant.id, "slug": tenant.slug}
    query = STORES[store]
    with psycopg.connect(tn.runtime_url, autocommit=True) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(query, params)
    runtime = sql.Identifier(tn.settings.runtime_role)
    with psycopg.connect(scratch.url) as admin:
        [stored] = admin.execute(query, params).fetchone() or [""]
        assert plain not in stored and (SEALED_PREFIX in stored or "**********" in stored)
        # negative control 1: with the grant the defence withholds, the read goes through...
        with admin.transaction(force_rollback=True):
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA tenantry TO {}").format(runtime))
            admin.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA tenantry TO {}").format(runtime))
            admin.execute(sql.SQL("SET LOCAL ROLE {}").format(runtime))
            [seen] = admin.execute(query, params).fetchone() or [""]
            assert seen == stored and plain not in seen  # ...and finds the sealed value only
        # negative control 2: a plain value stored there is what the probe would catch
        with admin.transaction(force_rollback=True):
            admin.execute(
                "UPDATE tenantry.config_layers SET document = jsonb_build_object('api_key', %s::text) WHERE tenant_id = %s",
                (plain, tenant.id),
            )
            [leaked] = admin.execute(STORES["layers"], params).fetchone() or [""]
            assert plain in leaked
