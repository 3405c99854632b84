"""Taking a backup: one tenant's tables, read from one snapshot, into an archive.

The tables are those the tenant's placement actually holds
(:func:`tenantry.services.placement_tables.held`). One admin connection, acting as the owner
with the tenant bound (row-level security confines it to the tenant on every tier), opens a
repeatable-read transaction and exports its snapshot; a second connection adopts that
snapshot and computes each table's row count and checksum (the mover's,
:func:`tenantry.db.tenant_copy.checksum`) while the first streams the rows out with
``COPY ... TO STDOUT`` into the archive. Both read the same snapshot, so the counts and
checksums describe exactly the rows written, and the tenant reads and writes on meanwhile
(a repeatable-read snapshot blocks no writer).

The checksum hashes every row's text form, about as much work for the server as the ``COPY``
of the same rows (``bench/backup.py``); on its own connection it runs beside the ``COPY``, on
another core when the server has one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation
from tenantry.core.placement import Placement
from tenantry.db import tenant_copy
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.tenant_copy import TableSpec
from tenantry.services.backups.archive import Manifest, Storage, TableEntry, write_stream
from tenantry.services.backups.crypto import BackupKeys

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["TENANT_COLUMN", "data_spec", "dump_tables", "fingerprint", "table_file", "write_json"]

#: bytes gathered from the COPY's messages before they are compressed
BATCH = 256 * 1024
#: the column no archive carries: a restore writes the restoring tenant's id
TENANT_COLUMN = "tenant_id"


def data_spec(spec: TableSpec) -> TableSpec:
    """``spec`` without ``tenant_id``: what an archive holds of a table, and what its
    checksum covers (so that it compares across tenants: a clone's rows have another id)."""
    keep = [i for i, c in enumerate(spec.columns) if c != TENANT_COLUMN]
    return dataclasses.replace(
        spec,
        columns=tuple(spec.columns[i] for i in keep),
        types=tuple(spec.types[i] for i in keep) if spec.types else (),
        key=tuple(k for k in spec.key if k != TENANT_COLUMN),
    )


def fingerprint(specs: list[TableSpec]) -> str:
    """A hash of the tables an archive holds: names, columns, types and keys (in order)."""
    shape = [[s.name, list(s.columns), list(s.types), sorted(s.key)] for s in specs]
    return hashlib.sha256(json.dumps(shape, separators=(",", ":")).encode()).hexdigest()[:32]


def table_file(index: int) -> str:
    return f"tables/{index:03d}.copy.zst"


def context(backup_id: str, name: str) -> str:
    """What a sealed file's chunks are bound to: the archive and the file's name."""
    return f"tenantry-backup:{backup_id}:{name}"


def write_json(
    storage: Storage, location: str, name: str, data: Any, keys: BackupKeys | None, backup_id: str
) -> dict[str, Any]:
    """Write ``data`` as one compressed (and sealed) JSON file; its manifest entry."""
    stored = name + (".enc" if keys is not None else "")
    out = write_stream(storage, location, stored, keys, context(backup_id, stored))
    out.write(json.dumps(data, sort_keys=True, default=str).encode())
    size, sha = out.close()
    return {"file": stored, "bytes": size, "sha256": sha}


def _bind(tn: ControlPlane, conn: psycopg.Connection[Any], tenant_id: uuid.UUID, place: Placement) -> None:
    tenant_copy.act_as_tenant(conn, owner=tn.settings.owner_role, signed=tn.binder().signed(tenant_id, place.schema))


def _select(spec: TableSpec, pooled: bool) -> sql.Composable:
    data = data_spec(spec)
    query = sql.SQL("SELECT {} FROM {}").format(data.cols(), sql.Identifier(spec.name))
    if pooled:  # (row-level security says the same; the explicit test helps the planner)
        query = sql.SQL("{} WHERE {} = current_setting('tenantry.tenant_id')::uuid").format(
            query, sql.Identifier(TENANT_COLUMN)
        )
    return query


def dump_tables(
    tn: ControlPlane,
    tenant_id: uuid.UUID,
    place: Placement,
    specs: list[TableSpec],
    storage: Storage,
    location: str,
    keys: BackupKeys | None,
    manifest: Manifest,
    on_table: Callable[[str, int, int], None] | None = None,
) -> None:
    """Stream every table of ``specs`` into the archive, from one snapshot; fill
    ``manifest.tables``. ``on_table(name, done, total)`` is called after each table."""
    url = database_url(tn.cell_admin_url(place.cell), place.database)
    pooled = place.isolation is Isolation.POOLED
    with ExitStack() as stack:
        reader = stack.enter_context(admin_connection(url))
        hasher = stack.enter_context(admin_connection(url))
        for conn in (reader, hasher):
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        stack.enter_context(reader.transaction())
        _bind(tn, reader, tenant_id, place)
        row = reader.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        stack.enter_context(hasher.transaction())
        hasher.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(row[0])))
        _bind(tn, hasher, tenant_id, place)

        def measure() -> list[tuple[int, str]]:
            return [tenant_copy.checksum(hasher, data_spec(spec)) for spec in specs]

        with ThreadPoolExecutor(1) as pool:
            sums = pool.submit(measure)
            written: list[tuple[str, int, int, str]] = []
            for index, spec in enumerate(specs):
                name = table_file(index) + (".enc" if keys is not None else "")
                out = write_stream(storage, location, name, keys, context(manifest.backup_id, name))
                cursor = reader.cursor()
                with cursor.copy(sql.SQL("COPY ({}) TO STDOUT").format(_select(spec, pooled))) as copy:
                    # text COPY sends a message per row: hand zstd fewer, larger pieces
                    pending = bytearray()
                    for block in copy:
                        pending += block
                        if len(pending) >= BATCH:
                            out.write(pending)
                            pending.clear()
                    out.write(pending)
                size, sha = out.close()
                written.append((name, cursor.rowcount, size, sha))
                if on_table is not None:
                    on_table(spec.name, index + 1, len(specs))
            measured = sums.result()
    for spec, (name, copied, size, sha), (rows, checksum) in zip(specs, written, measured):
        if copied >= 0 and copied != rows:  # one snapshot: they cannot differ
            raise AssertionError(f"{spec.name}: {copied} rows copied, {rows} counted in the same snapshot")
        data = data_spec(spec)
        manifest.tables.append(
            TableEntry(
                name=spec.name,
                columns=list(data.columns),
                types=list(data.types),
                key=list(data.key),
                rows=rows,
                checksum=checksum,
                file=name,
                bytes=size,
                sha256=sha,
            )
        )
