"""Backups in an S3-compatible object store, over real HTTP: moto's standalone server,
started here on a free port of the loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tenantry import BackupInvalid, Tenantry
from tenantry.core.secrets import new_key
from tenantry.testing import ScratchCatalog
from tests.model_app import Base
from tests.services.backup_support import rows, seed


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """The endpoint of a moto server with a bucket ``tenantry-backups``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/tenantry-backups", method="PUT")).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def stn(tn: Tenantry, tenantry_catalog: ScratchCatalog, s3: str) -> Iterator[Tenantry]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": s3,
            "AWS_ALLOW_HTTP": "true",
        }.items():
            env.setenv(name, value)
        settings = tenantry_catalog.settings(backup_url="s3://tenantry-backups/archives", backup_key=new_key("s3"))
        with Tenantry(settings, metadata=Base.metadata, actor="pytest") as t:
            yield t


def _store():  # (the AWS_* variables of `stn` say where, and as whom)
    from obstore.store import from_url

    return from_url("s3://tenantry-backups/archives")


def _objects(prefix: str) -> list[str]:
    import obstore

    return [o["path"] for batch in obstore.list(_store(), prefix=prefix) for o in batch]


def test_backups_in_an_s3_compatible_store(stn: Tenantry) -> None:
    tenant = stn.tenants.create(f"s3-{uuid.uuid4().hex[:8]}", plan="business")
    seed(stn, tenant, projects=3)
    backup = stn.backups.create(tenant.slug)
    assert backup.storage == "s3://tenantry-backups/archives" and backup.encrypted
    stored = _objects(f"{backup.location}/")
    assert sorted(k.rsplit("/", 1)[-1] for k in stored) == [
        "000.copy.zst.enc",
        "001.copy.zst.enc",
        "002.copy.zst.enc",
        "catalog.json.zst.enc",
        "manifest.json",
    ]
    assert stn.backups.verify(backup.id).tables == {"projects": 3, "tasks": 3, "comments": 3}
    clone = f"s3c-{uuid.uuid4().hex[:8]}"
    stn.backups.restore(backup.id, as_slug=clone, plan="free")
    assert rows(stn, clone) == rows(stn, tenant.slug)
    # the catalog loses the record: the archive is imported from the store, and verifies
    with psycopg.connect(stn.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM tenantry.backups WHERE id = %s", (str(backup.id),))
    imported = stn.backups.import_archive(backup.location)
    assert (imported.id, imported.storage, imported.encrypted) == (backup.id, backup.storage, True)
    assert stn.backups.verify(backup.id).tables == {"projects": 3, "tasks": 3, "comments": 3}
    # a table's object replaced by another's: refused, nothing restored
    import obstore

    data = obstore.get(_store(), f"{backup.location}/tables/000.copy.zst.enc").bytes()
    obstore.put(_store(), f"{backup.location}/tables/001.copy.zst.enc", bytes(data))
    with pytest.raises(BackupInvalid):
        stn.backups.verify(backup.id)
    assert stn.backups.delete(backup.id) is True
    assert _objects(f"{backup.location}/") == []
