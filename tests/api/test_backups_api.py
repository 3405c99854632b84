"""Backups through the admin API: taking one is a job to poll; list, show, delete; a restore
into a new tenant is a job too; unknown ids are 404 problems."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tenantry import Tenantry
from tenantry.services.backups import service
from tests.api.support import Client
from tests.services.backup_support import rows, seed


@pytest.fixture(autouse=True)
def store(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(service, "default_url", lambda: tmp_path.as_uri())


def test_backups_through_the_api(api: Client, tn: Tenantry, make_tenant) -> None:
    tenant = make_tenant("api-bk")
    seed(tn, tenant, projects=2)
    response = api.post(f"/v1/tenants/{tenant.slug}/backups")
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "done" and job["kind"] == "tenant.backup", job
    backup = job["result"]
    assert backup["status"] == "complete" and backup["rows"] == 6
    listed = api.get(f"/v1/tenants/{tenant.slug}/backups").json()["items"]
    assert [b["id"] for b in listed] == [backup["id"]]
    shown = api.get(f"/v1/backups/{backup['id']}").json()
    assert shown["manifest"]["tables"][1]["rows"] == 2
    clone = f"api-cl-{uuid.uuid4().hex[:8]}"
    response = api.post(f"/v1/backups/{backup['id']}/restore", json={"as": clone, "plan": "business"})
    assert response.status_code == 202, response.text
    restored = api.wait_job(response.json()["id"])
    assert restored["status"] == "done", restored
    assert rows(tn, clone) == rows(tn, tenant.slug)
    assert api.delete(f"/v1/backups/{backup['id']}").json() == {"id": backup["id"], "deleted": True}
    missing = api.get(f"/v1/backups/{backup['id']}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert api.delete(f"/v1/backups/{backup['id']}").status_code == 404


def test_an_archive_the_catalog_forgot_is_imported_through_the_api(api: Client, tn: Tenantry, make_tenant) -> None:
    tenant = make_tenant("api-im")
    seed(tn, tenant, projects=1)
    backup = tn.backups.create(tenant.slug)
    with psycopg.connect(tn.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM tenantry.backups WHERE id = %s", (str(backup.id),))
    response = api.post("/v1/backups/import", json={"location": backup.location})
    assert response.status_code == 201, response.text
    assert response.json()["id"] == str(backup.id) and response.json()["manifest"]["tables"]
    missing = api.post("/v1/backups/import", json={"location": f"{tenant.slug}/{uuid.uuid4()}"})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    outside = api.post("/v1/backups/import", json={"location": "../../etc"})
    assert outside.status_code in (400, 422), outside.text
    assert api.post("/v1/backups/import", json={"location": backup.location, "storage": "file:///"}).status_code == 422
