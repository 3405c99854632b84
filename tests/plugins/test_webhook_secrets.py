"""Issue 11, findings 3 and 4: webhook secrets interoperate with Standard Webhooks, are stored
sealed, read redacted everywhere (service, CLI, admin API, history, diffs, audit), stay usable
by the signer, and rotate with a window during which both secrets sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from anyio.from_thread import start_blocking_portal
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tenantry import ConfigurationError, InvalidSecret, Settings, Tenant, Tenantry
from tenantry.api import create_admin_app
from tenantry.cli.main import main
from tenantry.contrib.webhooks import (
    WebhooksPlugin,
    check_secret,
    deliver_pending,
    new_secret,
    rotate_secret,
    signature_headers,
    verify,
)
from tenantry.core.secrets import REDACTED, new_key
from tests.api.support import Client
from tests.plugins.receiver import Receiver
from tests.plugins.test_webhooks import SECRET, _emit, _mine, _scoped_runs, hooked  # noqa: F401 (fixtures)
from tests.support import Scratch

BODY = b'{"type":"task.created","data":{"id":7}}'


# -- the secret's form, and signatures both ways against the reference library ------------


def test_new_secrets_are_whsec_base64_of_24_to_64_bytes() -> None:
    for size in (24, 32, 64):
        secret = new_secret(size)
        assert secret.startswith("whsec_") and len(check_secret(secret)) == size
        assert Webhook(secret)._whsecret == check_secret(secret)  # the reference library reads the same key
    assert len(check_secret(new_secret())) == 32 and new_secret() != new_secret()
    for size in (16, 23, 65):
        with pytest.raises(InvalidSecret):
            new_secret(size)


@pytest.mark.parametrize(
    "secret",
    [
        "any sixteen-plus character text",  # main used such text as a raw UTF-8 key
        "whsec_not*base64*at*all*but*long*enough*",  # main silently used this whole
        "whsec_" + base64.b64encode(b"x" * 16).decode(),  # too short a key
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # the URL-safe alphabet
        "whsec_" + base64.b64encode(b"x" * 32).decode().rstrip("="),  # padding dropped
        "WHSEC_" + base64.b64encode(b"x" * 32).decode(),
    ],
)
def test_other_forms_are_refused_with_a_clear_error(secret: str) -> None:
    with pytest.raises(InvalidSecret, match=r"whsec_|base64|bytes"):
        check_secret(secret)
    with pytest.raises(InvalidSecret):
        signature_headers(secret, "msg_1", BODY)


def test_the_raw_text_keys_main_accepted_do_not_verify_with_the_reference_library() -> None:
    # negative control for the test above: signed as main did (text as the key), a receiver
    # using the Standard Webhooks library rejects the delivery
    text = "whsec_not*base64*at*all*but*long*enough*"
    stamp = int(datetime.now(UTC).timestamp())
    digest = hmac.new(text.encode(), f"msg_1.{stamp}.".encode() + BODY, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(text).verify(BODY, headers)


def test_tenantry_signs_what_standardwebhooks_verifies() -> None:
    secret = new_secret()
    headers = signature_headers(secret, "msg_2fcd", BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_standardwebhooks_signs_what_tenantry_verifies() -> None:
    secret = new_secret(48)
    moment = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_9", moment, BODY)
    headers = {"webhook-id": "msg_9", "webhook-timestamp": str(int(moment.timestamp())), "webhook-signature": signature}
    assert verify(secret, headers, BODY)
    assert not verify(secret, headers, BODY + b" ") and not verify(new_secret(), headers, BODY)


def test_during_a_rotation_one_header_carries_a_signature_per_secret() -> None:
    new, old, stranger = new_secret(), new_secret(), new_secret()
    headers = signature_headers([new, old], "msg_3", BODY)
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secret in (new, old):
        Webhook(secret).verify(BODY, headers)
        assert verify(secret, headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


# -- stored sealed, read redacted, used by the signer -------------------------------------


def _stored(db: Scratch, tenant: Tenant) -> list[str]:
    """Everything the catalog holds about the tenant's config, as text."""
    with psycopg.connect(db.url) as conn:
        rows = conn.execute(
            "SELECT document::text || overrides::text FROM tenantry.config_layers WHERE tenant_id = %(t)s"
            " UNION ALL SELECT document::text || overrides::text FROM tenantry.config_versions WHERE tenant_id = %(t)s"
            " UNION ALL SELECT coalesce(before::text, '') || coalesce(after::text, '') FROM tenantry.audit_log"
            "  WHERE target = %(slug)s AND action LIKE 'config.%%'",
            {"t": tenant.id, "slug": tenant.slug},
        ).fetchall()
    return [r[0] for r in rows]


def _leaks(text: str, secret: str) -> bool:
    return secret in text or secret.removeprefix("whsec_") in text


def test_a_webhook_secret_is_sealed_at_rest_and_redacted_in_every_read(
    plugins_db: Scratch,
    ptn: Tenantry,
    hooked: Callable[..., Tenant],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = hooked("https://hooks.example")
    stored = _stored(plugins_db, tenant)
    assert len(stored) == 3  # layer, version 1, audit entry
    assert not any(_leaks(text, SECRET) for text in stored)
    assert "tenantry:sealed:v1:scratch:" in stored[0] and "tenantry:sealed:v1:" in stored[1]
    assert REDACTED in stored[2]

    second = new_secret()
    change = ptn.config.set("webhooks.secret", second, tenant=tenant.slug)
    assert [c.to_dict() for c in change.changes] == [
        {"path": "webhooks.secret", "layer": "value", "change": "changed", "before": REDACTED, "after": REDACTED}
    ]
    reads: list[Any] = [
        ptn.config.get(tenant=tenant.slug).to_dict(),
        ptn.config.get(tenant=tenant.slug, key="webhooks").to_dict(),
        ptn.config.get(tenant=tenant.slug, key="webhooks.secret").to_dict(),
        [v.to_dict() for v in ptn.config.history(tenant=tenant.slug)],
        ptn.config.version(1, tenant=tenant.slug).to_dict(),
        ptn.config.diff(0, 2, tenant=tenant.slug).to_dict(),
        ptn.config.diff(1, 2, tenant=tenant.slug).to_dict(),
    ]
    assert reads[2]["value"] == REDACTED and reads[0]["document"]["webhooks"]["secret"] == REDACTED
    assert {
        "path": "webhooks.secret",
        "layer": "value",
        "change": "changed",
        "before": REDACTED,
        "after": REDACTED,
    } in reads[6]["changes"]
    # the CLI: get, history, diff, and the echo of set
    for name in ("TENANTRY_PLUGINS", "TENANTRY_APP", "TENANTRY_CONFIG", "TENANTRY_MIGRATIONS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (
        ("TENANTRY_DATABASE_URL", plugins_db.url),
        ("TENANTRY_OWNER_ROLE", plugins_db.owner),
        ("TENANTRY_RUNTIME_ROLE", plugins_db.runtime),
        ("TENANTRY_SECRET_KEYS", plugins_db.secret_keys),
        ("TENANTRY_PLUGINS", "webhooks"),
    ):
        monkeypatch.setenv(name, value)
    third = new_secret()
    for args in (
        ["config", "get", "--tenant", tenant.slug],
        ["config", "get", "webhooks", "--tenant", tenant.slug],
        ["config", "get", "--layer", "--tenant", tenant.slug],
        ["config", "history", "--tenant", tenant.slug],
        ["config", "diff", "1", "2", "--tenant", tenant.slug],
        ["config", "set", "webhooks.secret", third, "--tenant", tenant.slug],
        ["config", "set", "webhooks.secret", new_secret(), "--tenant", tenant.slug, "--json"],
    ):
        assert main(args) == 0, args
        reads.append(capsys.readouterr().out)
    # the admin API: /v1/config reads and the audit log
    _, token = ptn.create_token(f"reader-{tenant.slug}", ["config:read", "audit:read"])
    app = create_admin_app(ptn, docs=False)
    with start_blocking_portal() as portal:
        client = Client(portal, app, token)
        for path in (
            f"/v1/config/tenants/{tenant.slug}",
            f"/v1/config/tenants/{tenant.slug}/keys/webhooks.secret",
            f"/v1/config/tenants/{tenant.slug}/keys/webhooks",
            f"/v1/config/tenants/{tenant.slug}/history",
            f"/v1/config/tenants/{tenant.slug}/diff?from=0&to=3",
            f"/v1/audit?target={tenant.slug}",
        ):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            reads.append(response.text)
    app.state.jobs.close()
    shown = json.dumps(reads, default=str)
    for secret in (SECRET, second, third):
        assert not _leaks(shown, secret)
    assert REDACTED in shown
    assert not any(_leaks(text, s) for text in _stored(plugins_db, tenant) for s in (SECRET, second, third))
    # ...and the code that needs it reads it
    with ptn.tenant(tenant.slug):
        config = ptn.config.current().webhooks  # type: ignore[attr-defined]
        assert config.secret.get_secret_value().startswith("whsec_") and REDACTED in repr(config)


def test_a_document_read_back_and_written_again_keeps_its_secret(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    tenant = hooked("https://hooks.example")
    layer = ptn.config.get(tenant=tenant.slug).document
    assert layer["webhooks"]["secret"] == REDACTED
    layer["webhooks"]["events"] = ["task.*"]
    ptn.config.replace(layer, tenant=tenant.slug)
    with ptn.tenant(tenant.slug):
        assert ptn.config.current().webhooks.secret.get_secret_value() == SECRET  # type: ignore[attr-defined]


def test_rotation_keeps_the_old_secret_signing_for_the_window(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver() as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        fresh = rotate_secret(ptn, tenant.slug, keep_old=timedelta(hours=6))
        assert fresh != SECRET and len(check_secret(fresh)) == 32
        _emit(ptn, tenant, "task.created", {"id": 1})
        assert deliver_pending(ptn).delivered == 1
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (fresh, SECRET):  # receivers on either secret accept it, with the reference library too
        assert verify(secret, got.headers, got.body)
        Webhook(secret).verify(got.body, got.headers)
    shown = ptn.config.get(tenant=tenant.slug, key="webhooks").to_dict()
    assert shown["value"]["previous_secrets"][0]["secret"] == REDACTED and not _leaks(json.dumps(shown), fresh)
    with ptn.tenant(tenant.slug):
        config = ptn.config.current().webhooks  # type: ignore[attr-defined]
    later = datetime.now(UTC) + timedelta(hours=7)
    assert config.signing_secrets(datetime.now(UTC)) == [fresh, SECRET]
    assert config.signing_secrets(later) == [fresh]  # the window closed: the old one signs no more
    assert rotate_secret(ptn, tenant.slug, keep_old=timedelta(0)) != fresh
    with ptn.tenant(tenant.slug):
        assert len(ptn.config.current().webhooks.signing_secrets(datetime.now(UTC))) == 2  # type: ignore[attr-defined]


# -- the key that seals them ----------------------------------------------------------------


def test_sealing_keys_rotate_and_a_missing_key_fails_clearly(
    fresh_scratch: Scratch, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = fresh_scratch.secret_keys, new_key("next")
    first = Tenantry(fresh_scratch.settings(), plugins=[WebhooksPlugin()], actor="pytest-keys")
    try:
        first.init()
        tenant = first.create_tenant("keys-a")
        first.config.set("webhooks", {"url": "https://hooks.example/x", "secret": SECRET}, tenant="keys-a")
    finally:
        first.close()

    def reading(keys: str | None) -> Tenantry:
        return Tenantry(fresh_scratch.settings(secret_keys=keys), plugins=[WebhooksPlugin()], actor="pytest-keys")

    rotated = reading(f"{new},{old}")  # the new key first: it seals, the old one still opens
    try:
        with rotated.tenant("keys-a"):
            assert rotated.config.current().webhooks.secret.get_secret_value() == SECRET  # type: ignore[attr-defined]
        assert rotated.config.reseal() == 1 and rotated.config.reseal() == 0
    finally:
        rotated.close()
    for name, value in (
        ("TENANTRY_DATABASE_URL", fresh_scratch.url),
        ("TENANTRY_OWNER_ROLE", fresh_scratch.owner),
        ("TENANTRY_RUNTIME_ROLE", fresh_scratch.runtime),
        ("TENANTRY_SECRET_KEYS", f"{new},{old}"),
        ("TENANTRY_PLUGINS", "webhooks"),
    ):
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["config", "reseal", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"resealed_layers": 0}  # done already
    with psycopg.connect(fresh_scratch.url) as conn:
        [layer] = conn.execute(
            "SELECT document::text FROM tenantry.config_layers WHERE tenant_id = %s", (tenant.id,)
        ).fetchone() or [""]
    assert "tenantry:sealed:v1:next:" in layer and ":scratch:" not in layer
    only_new = reading(new)
    try:
        with only_new.tenant("keys-a"):
            assert only_new.config.current().webhooks.secret.get_secret_value() == SECRET  # type: ignore[attr-defined]
    finally:
        only_new.close()
    only_old = reading(old)  # the old key alone no longer opens it
    try:
        with only_old.tenant("keys-a"), pytest.raises(ConfigurationError, match="cannot open.*TENANTRY_SECRET_KEYS"):
            only_old.config.current()
        with pytest.raises(ConfigurationError, match="'next'"):  # the service names the key it lacks
            only_old.config.get(tenant="keys-a")
    finally:
        only_old.close()
    keyless = Tenantry(
        Settings(database_url=fresh_scratch.url, owner_role=fresh_scratch.owner, runtime_role=fresh_scratch.runtime),
        plugins=[WebhooksPlugin()],
    )
    try:
        with pytest.raises(ConfigurationError, match="TENANTRY_SECRET_KEYS"):
            keyless.config.set("webhooks.secret", new_secret(), tenant="keys-a")
        with keyless.tenant("keys-a"):
            assert keyless.flags.value("webhooks.deliver", default=True) is True  # flags need no key
            with pytest.raises(ConfigurationError, match="TENANTRY_SECRET_KEYS"):
                keyless.config.current()
    finally:
        keyless.close()
