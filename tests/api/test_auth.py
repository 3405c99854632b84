"""Tokens and scopes: every way a request can fail to authenticate, scope checks, the actor in
the audit log, and the secret kept nowhere."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from tenantry import AuthenticationFailed, Conflict, InvalidInput, Tenantry
from tenantry.core.scopes import SCOPES, allows, expand
from tests.api.support import Client, MakeToken


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].startswith(("urn:tenantry:problem:", "about:blank"))
    assert "Traceback" not in response.text
    return body


def test_no_token_is_401_with_a_bare_challenge(api: Client) -> None:
    response = api.as_token(None).get("/v1/tenants")
    body = _problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="tenantry"'
    assert body["type"] == "urn:tenantry:problem:authentication-failed" and body["instance"] == "/v1/tenants"


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "tnt_abc",
        "Bearer tnt_abc",
        "Bearer x" * 50,
        "Bearer tnt_aaaaaaaaaaaa_" + "A" * 43,
        "Bearer tnt_AAAAAAAAAAAA_" + "A" * 43,
    ],
)
def test_malformed_or_unknown_tokens_are_401(api: Client, header: str) -> None:
    response = api.get("/v1/tenants", headers={"Authorization": header})
    _problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer realm="tenantry", error="invalid_token"')


def test_a_wrong_secret_with_a_real_prefix_is_401_and_says_nothing_more(api: Client, make_token: MakeToken) -> None:
    token, secret = make_token("tenants:read")
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    body = _problem(api.as_token(forged).get("/v1/tenants"), 401)
    assert body["detail"] == "invalid API token" and token.name not in body["detail"]


def test_an_expired_token_is_401(tn: Tenantry, api: Client, make_token: MakeToken) -> None:
    token, secret = make_token("tenants:read", expires_in=timedelta(hours=1))
    assert api.as_token(secret).get("/v1/tenants").status_code == 200
    with tn.admin() as conn:
        conn.execute(
            "UPDATE tenantry.api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", (token.id,)
        )
    body = _problem(api.as_token(secret).get("/v1/tenants"), 401)
    assert "expired" in body["detail"]


def test_a_revoked_token_is_refused_at_once(tn: Tenantry, api: Client, make_token: MakeToken) -> None:
    token, secret = make_token("tenants:read")
    assert api.as_token(secret).get("/v1/tenants").status_code == 200
    revoked = tn.tokens.revoke(token.name)
    assert revoked.revoked_at is not None
    assert tn.tokens.revoke(token.id).revoked_at == revoked.revoked_at  # again: a no-op
    body = _problem(api.as_token(secret).get("/v1/tenants"), 401)
    assert "revoked" in body["detail"]
    assert token.name not in {t.name for t in tn.tokens.list()}
    assert token.name in {t.name for t in tn.tokens.list(include_revoked=True)}


def test_a_missing_scope_is_403_naming_it(api: Client, make_token: MakeToken) -> None:
    _, secret = make_token("plans:read")
    response = api.as_token(secret).get("/v1/tenants")
    body = _problem(response, 403)
    assert body["scope"] == "tenants:read" and "tenants:read" in body["detail"]
    assert (
        response.headers["www-authenticate"]
        == 'Bearer realm="tenantry", error="insufficient_scope", scope="tenants:read"'
    )
    # reads do not grant writes
    _, reader = make_token("tenants:read")
    body = _problem(api.as_token(reader).post("/v1/tenants", json={"slug": "never-made"}), 403)
    assert body["scope"] == "tenants:write"


@pytest.mark.parametrize(
    ("scope", "method", "path", "body"),
    [
        ("tenants:write", "POST", "/v1/tenants", {"slug": "x-never"}),
        ("tenants:write", "PATCH", "/v1/tenants/x-never", {"status": "suspended"}),
        ("tenants:write", "DELETE", "/v1/tenants/x-never", None),
        ("moves:write", "POST", "/v1/tenants/x-never/move", {"plan": "business"}),
        ("moves:write", "POST", "/v1/tenants/x-never/move/abort", None),
        ("plans:read", "GET", "/v1/plans", None),
        ("plans:write", "PATCH", "/v1/plans/free", {"cell": None}),
        ("cells:read", "GET", "/v1/cells", None),
        ("cells:write", "POST", "/v1/cells", {"name": "c-never", "dsn": "host=127.0.0.1"}),
        ("cells:write", "PATCH", "/v1/cells/primary", {"status": "draining"}),
        ("jobs:read", "GET", "/v1/jobs/00000000-0000-4000-8000-000000000000", None),
        ("migrations:read", "GET", "/v1/migrations", None),
        ("audit:read", "GET", "/v1/audit", None),
        ("plugins:read", "GET", "/v1/plugins", None),
        ("plugins:read", "GET", "/v1/plugin-errors", None),
        ("plugins:read", "GET", "/v1/plugin-hooks", None),
        ("plugins:write", "POST", "/v1/plugin-hooks/retry", {"ids": [1]}),
        ("plugins:read", "GET", "/v1/tenants/x-never/plugins", None),
        ("plugins:write", "PUT", "/v1/plugins/webhooks/plans/free", {"enabled": True}),
        ("plugins:write", "DELETE", "/v1/plugins/webhooks/tenants/x-never", None),
    ],
)
def test_every_route_checks_its_scope(
    api: Client, make_token: MakeToken, scope: str, method: str, path: str, body: dict | None
) -> None:
    others = [s for s in SCOPES if s != "admin" and not allows([s], scope)]
    _, secret = make_token(*others)
    refused = api.as_token(secret).request(method, path, json=body)
    assert _problem(refused, 403)["scope"] == scope


def test_write_scopes_imply_reads_and_admin_implies_all() -> None:
    assert expand(["tenants:write"]) == {"tenants:write", "tenants:read", "jobs:read"}
    assert allows(["moves:write"], "jobs:read") and allows(["cells:write"], "cells:read")
    assert not allows(["tenants:read"], "tenants:write") and not allows(["moves:write"], "tenants:write")
    assert expand(["admin"]) == set(SCOPES)
    for resource in ("domains", "config", "flags", "brands", "plugins"):
        assert expand([f"{resource}:write"]) == {f"{resource}:write", f"{resource}:read"}
        assert not allows([f"{resource}:read"], f"{resource}:write")


def test_token_creation_is_validated(tn: Tenantry) -> None:
    with pytest.raises(InvalidInput, match="unknown scope"):
        tn.tokens.create(f"v-{uuid.uuid4().hex[:8]}", ["tenants:delete"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        tn.tokens.create(f"v-{uuid.uuid4().hex[:8]}", [])
    for bad in ("", "Upper", "a b", 'x"; drop', "-lead", "x" * 64, "é"):
        with pytest.raises(InvalidInput, match="token name"):
            tn.tokens.create(bad, ["admin"])
    with pytest.raises(InvalidInput, match="positive"):
        tn.tokens.create(f"v-{uuid.uuid4().hex[:8]}", ["admin"], expires_in=timedelta(seconds=-1))
    name = f"v-{uuid.uuid4().hex[:8]}"
    tn.tokens.create(name, ["admin"])
    tn.tokens.revoke(name)
    with pytest.raises(Conflict, match="never reused"):
        tn.tokens.create(name, ["admin"])


def test_the_secret_is_stored_nowhere_only_its_hash(tn: Tenantry, scratch, make_token: MakeToken) -> None:
    token, secret = make_token("admin")
    tn.tokens.authenticate(secret)
    assert secret.startswith(f"tnt_{token.prefix}_") and len(secret) == 60
    random_part = secret.split("_", 2)[2]
    with psycopg.connect(scratch.url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'tenantry'"
            " AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            query = sql.SQL("SELECT count(*) FROM tenantry.{} t WHERE t::text LIKE %s OR t::text LIKE %s")
            hits = conn.execute(query.format(sql.Identifier(table)), (f"%{secret}%", f"%{random_part}%")).fetchone()
            assert hits == (0,), table
        stored = conn.execute("SELECT hash FROM tenantry.api_tokens WHERE id = %s", (token.id,)).fetchone()
    import hashlib

    assert stored is not None and bytes(stored[0]) == hashlib.sha256(secret.encode()).digest()


def test_the_runtime_role_cannot_read_tokens(tn: Tenantry) -> None:
    with tn.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT hash FROM tenantry.api_tokens")


def test_use_is_recorded_and_bad_tokens_raise_in_the_library(tn: Tenantry, make_token: MakeToken) -> None:
    token, secret = make_token("tenants:read")
    assert token.last_used_at is None
    assert tn.tokens.authenticate(secret).name == token.name
    used = next(t for t in tn.tokens.list() if t.id == token.id)
    assert used.last_used_at is not None
    with pytest.raises(AuthenticationFailed):
        tn.tokens.authenticate(secret + "x")


def test_writes_are_audited_as_the_token(tn: Tenantry, api: Client, make_token: MakeToken) -> None:
    token, secret = make_token("tenants:write", prefix="auditor")
    slug = f"aud-{uuid.uuid4().hex[:8]}"
    assert api.as_token(secret).post("/v1/tenants", json={"slug": slug}).status_code == 201
    assert api.as_token(secret).patch(f"/v1/tenants/{slug}", json={"status": "suspended"}).status_code == 200
    entries = tn.audit.list(target_type="tenant", target=slug)
    assert [e.actor for e in entries] == [f"token:{token.name}"] * 2
    assert tn.actor == "pytest"  # the shared object's own actor is untouched
    # and the audit endpoint finds what the token did
    found = api.get("/v1/audit", params={"actor": f"token:{token.name}"}).json()["items"]
    assert {e["action"] for e in found} == {"tenant.create", "tenant.suspended"}


def test_concurrent_requests_keep_their_own_actor(
    tn: Tenantry, api: Client, make_token: MakeToken, make_tenant
) -> None:
    """Many tokens changing many tenants at once: each change is audited as its own token."""
    pairs = []
    for _ in range(6):
        token, secret = make_token("tenants:write", prefix="conc")
        pairs.append((token, secret, make_tenant("conc")))
    errors: list[str] = []

    def churn(secret: str, slug: str) -> None:
        client = api.as_token(secret)
        for status in ("suspended", "active") * 3:
            response = client.patch(f"/v1/tenants/{slug}", json={"status": status})
            if response.status_code != 200:
                errors.append(response.text)

    threads = [threading.Thread(target=churn, args=(secret, tenant.slug)) for _, secret, tenant in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for token, _, tenant in pairs:
        actors = {
            e.actor for e in tn.audit.list(target_type="tenant", target=tenant.slug) if e.action != "tenant.create"
        }
        assert actors == {f"token:{token.name}"}


def test_acting_as_is_scoped_to_the_thread_and_block(tn: Tenantry) -> None:
    seen: list[str] = []
    with tn.acting_as("token:outer"):
        worker = threading.Thread(target=lambda: seen.append(tn.actor))
        worker.start()
        worker.join()
        assert tn.actor == "token:outer"
        other = Tenantry(tn.settings, actor="other")
        assert other.actor == "other"  # bound for tn only
    assert seen == ["pytest"] and tn.actor == "pytest"


def test_the_api_mounted_under_a_prefix_checks_tokens_below_it(api: Client, make_token: MakeToken) -> None:
    """Under Starlette's Mount, ``path`` keeps the prefix and ``root_path`` names it."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/admin", app=api.app)])
    _, secret = make_token("tenants:read")
    mounted = Client(api._portal, outer, secret)  # type: ignore[arg-type]
    assert mounted.get("/admin/v1/tenants").status_code == 200
    assert mounted.as_token(None).get("/admin/v1/tenants").status_code == 401
    assert mounted.as_token(secret[:-4] + "AAAA").get("/admin/v1/tenants").status_code == 401
    _, weak = make_token("audit:read")
    assert mounted.as_token(weak).get("/admin/v1/tenants").status_code == 403
