"""Helpers of the backup tests: seeding a tenant, reading its rows, editing archives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import zstandard

from tenantry import Tenant, Tenantry


def seed(tn: Tenantry, tenant: Tenant, projects: int = 5) -> None:
    with tn.tenant(tenant.slug), tn.connection() as conn:
        for i in range(projects):
            pid = conn.execute("INSERT INTO projects (name) VALUES (%s) RETURNING id", (f"p{i} 'x', \\ y",)).fetchone()[
                0
            ]
            tid = conn.execute(
                "INSERT INTO tasks (project_id, title, points, priority, done) VALUES (%s, %s, %s, 'high', %s)"
                " RETURNING id",
                (pid, "" if i == 0 else f"t\t{i}", i, i % 2 == 0),
            ).fetchone()[0]
            conn.execute("INSERT INTO comments (task_id, body) VALUES (%s, %s)", (tid, "" if i == 1 else f"c{i}"))


def rows(tn: Tenantry, slug: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tenant, without tenant_id, per table."""
    out = {}
    with tn.tenant(slug, allow_inactive=True), tn.connection() as conn:
        out["projects"] = conn.execute("SELECT id, name, created_at FROM projects ORDER BY id").fetchall()
        out["tasks"] = conn.execute(
            "SELECT id, project_id, title, points, priority::text, done FROM tasks ORDER BY id"
        ).fetchall()
        out["comments"] = conn.execute("SELECT id, task_id, body FROM comments ORDER BY id").fetchall()
    return out


def archive_dir(tn: Tenantry, backup_id: Any) -> Path:
    backup = tn.backups.get(backup_id)
    return Path(backup.storage.removeprefix("file://")) / backup.location


def read_table(tn: Tenantry, backup_id: Any, index: int) -> bytes:
    path = archive_dir(tn, backup_id) / f"tables/{index:03d}.copy.zst"
    return zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()


def rewrite(tn: Tenantry, backup_id: Any, change_manifest: Any, tables: dict[int, bytes] | None = None) -> None:
    """Edit an unencrypted archive as someone with write access to the storage and the catalog
    would: replace table files, fix the manifest's sizes and hashes, edit it, and the catalog's copy."""
    import hashlib

    where = archive_dir(tn, backup_id)
    manifest = json.loads((where / "manifest.json").read_text())
    for index, data in (tables or {}).items():
        packed = zstandard.ZstdCompressor().compress(data)
        (where / f"tables/{index:03d}.copy.zst").write_bytes(packed)
        manifest["tables"][index]["bytes"] = len(packed)
        manifest["tables"][index]["sha256"] = hashlib.sha256(packed).hexdigest()
    change_manifest(manifest)
    (where / "manifest.json").write_text(json.dumps(manifest))
    with psycopg.connect(tn.admin_url, autocommit=True) as conn:
        conn.execute("UPDATE tenantry.backups SET manifest = %s WHERE id = %s", (json.dumps(manifest), str(backup_id)))
