"""UUIDv7 keys: ids in shared tables that do not count the other tenants' rows.

Run with TENANTRY_DATABASE_URL (and the role settings) pointing at a server, or with none
for the embedded one: ``python examples/uuid7_keys.py``.
"""

import os
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tenantry import Settings, TenantExists, Tenantry, TenantScoped


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits. New keys
    sort after older ones, so the primary key index grows at its end, as with a sequence.
    (Python 3.14 has ``uuid.uuid7()``; PostgreSQL 18 has ``uuidv7()``.)"""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC's variant
    return uuid.UUID(int=value)


class Base(DeclarativeBase):
    pass


class Invoice(TenantScoped, Base):
    __tablename__ = "invoices"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True, default=uuid7)
    total: Mapped[int]


tn = Tenantry(Settings.from_env(), metadata=Base.metadata)
tn.schema.init()
for slug in ("keys-acme", "keys-globex"):
    try:
        tn.tenants.create(slug)
    except TenantExists:
        pass  # a rerun

first: dict[str, uuid.UUID] = {}
for slug in ("keys-acme", "keys-globex", "keys-acme"):
    with tn.tenant(slug), Session(tn.engine()) as session:
        invoice = Invoice(total=100)
        session.add(invoice)
        session.commit()
        first.setdefault(slug, invoice.id)
        # nothing in the id says how many invoices anyone made before
        print(slug, invoice.id.version, invoice.id.bytes[:6] >= first[slug].bytes[:6])
tn.close()
