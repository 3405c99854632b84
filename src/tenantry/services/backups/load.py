"""Loading an archive's rows into a tenant's placement, and checking an archive's data.

:func:`load_tables` runs in one transaction on the placement's database, as the owner with
the restoring tenant bound: it removes the tenant's rows (so a rerun starts clean), then
each table's rows reach a temporary table with ``COPY FROM STDIN`` (PostgreSQL has no
``COPY FROM`` into tables under row-level security) and the table with an ``INSERT`` that
writes the *restoring* tenant's id into ``tenant_id``: an archive never chooses the tenant
its rows land in. An archive whose tables list a ``tenant_id`` column (a tampered one) is
refused; and should a row slip through with another tenant's id, row-level security
refuses the insert. Last, each table's count and checksum must match the manifest, or the
transaction rolls back and nothing changed.

:func:`check_tables` reads an archive's data back into temporary tables and checks the same
counts and checksums (the columns the checksum hashes as they are keep their
built-in types, the others are text, whose form the ``COPY`` text format keeps exactly), so
``verify`` needs no placement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation
from tenantry.core.placement import Placement
from tenantry.db import tenant_copy
from tenantry.db.tenant_copy import TableSpec
from tenantry.errors import BackupInvalid
from tenantry.services.backups.archive import Manifest, Storage, TableEntry, open_stream
from tenantry.services.backups.crypto import BackupKeys
from tenantry.services.backups.dump import TENANT_COLUMN, context

__all__ = ["check_tables", "copy_in", "load_tables", "table_stream"]

#: test switch for the negative control of the tampered-archive test: when True, a
#: ``tenant_id`` column in an archive is loaded as it is (row-level security then refuses it)
TRUST_ARCHIVE_TENANT = False


def table_stream(
    storage: Storage, location: str, manifest: Manifest, entry: TableEntry, keys: BackupKeys | None
) -> Iterator[bytes]:
    return open_stream(
        storage,
        location,
        entry.file,
        keys,
        encrypted=manifest.encryption is not None,
        context=context(manifest.backup_id, entry.file),
        what=f"table {entry.name}'s data",
        expect=(entry.bytes, entry.sha256),
    )


def copy_in(
    conn: psycopg.Connection[Any], target: sql.Composable, columns: list[str], blocks: Iterator[bytes], what: str
) -> None:
    """COPY ``blocks`` into ``target``; an archive fault wins over the driver's report of it."""
    failure: BackupInvalid | None = None

    def guarded() -> Iterator[bytes]:
        nonlocal failure
        try:
            yield from blocks
        except BackupInvalid as err:
            failure = err
            raise

    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    try:
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, cols)) as copy:
            for block in guarded():
                copy.write(block)
    except BackupInvalid:
        raise
    except psycopg.Error as err:
        if failure is not None:
            raise failure from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackupInvalid(f"{what} does not load (corrupted or truncated archive?): {first}") from None
    if failure is not None:
        raise failure


def _check(conn: psycopg.Connection[Any], spec: TableSpec, entry: TableEntry, where: str) -> None:
    rows, checksum = tenant_copy.checksum(conn, spec, like=entry.checksum)
    if (rows, checksum) != (entry.rows, entry.checksum):
        raise BackupInvalid(
            f"table {entry.name} {where} does not match the manifest ({rows} rows, the manifest says"
            f" {entry.rows}, or another checksum): the archive is corrupted or was changed; nothing was restored"
        )


def load_tables(
    conn: psycopg.Connection[Any],
    *,
    tenant_id: uuid.UUID,
    place: Placement,
    target_specs: list[TableSpec],
    manifest: Manifest,
    storage: Storage,
    location: str,
    keys: BackupKeys | None,
    on_table: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """In ``conn``'s open transaction (owner role, the restoring tenant bound): replace the
    tenant's rows with the archive's, check them against the manifest; returns the rows per
    table. Tables of the placement the archive lacks are left empty."""
    by_name = {spec.name: spec for spec in target_specs}
    for spec in reversed(target_specs):  # children first
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(spec.name)))
    loaded: dict[str, int] = {}
    for index, entry in enumerate(manifest.tables):
        spec = by_name[entry.name]
        carries_tenant = TENANT_COLUMN in entry.columns
        if carries_tenant and not TRUST_ARCHIVE_TENANT:
            raise BackupInvalid(
                f"table {entry.name} of the archive carries a {TENANT_COLUMN} column: archives never do (a tampered"
                " archive?); nothing was restored"
            )
        temp = sql.Identifier(f"tenantry_restore_{index}")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in entry.columns)
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                temp, cols, sql.Identifier(entry.name)
            )
        )
        copy_in(
            conn, temp, entry.columns, table_stream(storage, location, manifest, entry, keys), f"table {entry.name}"
        )
        if carries_tenant:  # the negative control only: the archive's ids as they are
            insert = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
                sql.Identifier(entry.name), cols, cols, temp
            )
            conn.execute(insert)
        else:
            conn.execute(
                sql.SQL("INSERT INTO {} ({}, {}) OVERRIDING SYSTEM VALUE SELECT %s, {} FROM {}").format(
                    sql.Identifier(entry.name), sql.Identifier(TENANT_COLUMN), cols, cols, temp
                ),
                (tenant_id,),
            )
        tenant_copy.sync_sequences(conn, place.schema, spec, shared=place.isolation is Isolation.POOLED)
        check = TableSpec(entry.name, tuple(entry.columns), tuple(entry.key))
        _check(conn, check, entry, "as restored")
        loaded[entry.name] = entry.rows
        if on_table is not None:
            on_table(entry.name, index + 1, len(manifest.tables))
    return loaded


def _verify_columns(entry: TableEntry) -> list[tuple[str, str]]:
    """The columns of the table ``verify`` reads a file into, and their types: the ones the
    checksum hashes as they are keep their (built-in) type, every other is text, whose form
    the text ``COPY`` keeps exactly (an archive of the older checksum: all text)."""
    if not entry.checksum.startswith(tenant_copy.CHECKSUM_V2):
        return [(c, "text") for c in entry.columns]
    if len(entry.types) != len(entry.columns):
        raise BackupInvalid(
            f"table {entry.name} in the manifest lists {len(entry.types)} types for {len(entry.columns)} columns"
        )
    return [
        (c, kind if tenant_copy.hashed_as_is(kind) else "text")
        for c, kind in zip(entry.columns, entry.types, strict=True)
    ]


def check_tables(
    conn: psycopg.Connection[Any],
    manifest: Manifest,
    storage: Storage,
    location: str,
    keys: BackupKeys | None,
    on_table: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Read every table's data back (in ``conn``'s open transaction, into temporary tables,
    dropped at its end) and check its count and checksum against the manifest."""
    checked: dict[str, int] = {}
    for index, entry in enumerate(manifest.tables):
        temp = f"tenantry_verify_{index}"
        try:
            conn.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
                    sql.Identifier(temp),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(kind)) for c, kind in _verify_columns(entry)
                    ),
                )
            )
        except psycopg.Error as err:  # (names and types checked: only a tampered manifest gets here)
            raise BackupInvalid(f"table {entry.name}'s columns in the manifest are not valid: {err}") from None
        copy_in(
            conn,
            sql.Identifier(temp),
            entry.columns,
            table_stream(storage, location, manifest, entry, keys),
            f"table {entry.name}",
        )
        _check(conn, TableSpec(temp, tuple(entry.columns), ()), entry, "in the archive")
        checked[entry.name] = entry.rows
        if on_table is not None:
            on_table(entry.name, index + 1, len(manifest.tables))
    return checked
