"""Unique keys without ``tenant_id``: an existence oracle across pooled tenants.

PostgreSQL checks a unique index over every row of a shared table, RLS or not, so with a unique
``email`` tenant A learns from a duplicate-key error that tenant B has that address. tenantry
refuses such keys in the metadata it deploys (init, deploy) and reports those a migration or a
hand-run ``CREATE UNIQUE INDEX`` made (``tenantry check``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql

from tenantry import InvalidInput, Tenant, Tenantry
from tenantry.db import rls
from tests.db.isolation_probe import bound
from tests.model_app import Base


def _members(*extra: Any, email: dict[str, Any] | None = None) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "members",
        metadata,
        sa.Column("tenant_id", sa.Uuid(), primary_key=True),
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("email", sa.Text(), **(email or {})),
        sa.Column("nick", sa.Text()),
        *extra,
    )
    return metadata


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        (lambda: _members(email={"unique": True}), "unique key on (email) must include tenant_id"),
        (
            lambda: _members(sa.UniqueConstraint("email", name="members_email_key")),
            "unique key members_email_key on (email)",
        ),
        (lambda: _members(email={"unique": True, "index": True}), "unique index ix_members_email on (email)"),
        (
            lambda: _members(sa.Index("members_lower_email", sa.func.lower(sa.column("email")), unique=True)),
            "unique index members_lower_email on (lower(email))",
        ),
        (
            lambda: _members(
                sa.Index("members_live_email", "email", unique=True, postgresql_where=sa.text("nick IS NOT NULL"))
            ),
            "unique index members_live_email on (email) (partial)",
        ),
        (
            lambda: _members(postgresql.ExcludeConstraint(("email", "="), name="members_email_excl")),
            "exclusion constraint members_email_excl on (email)",
        ),
    ],
    ids=["column-unique", "constraint", "unique-index", "expression", "partial", "exclusion"],
)
def test_metadata_with_a_unique_key_without_tenant_id_is_refused(
    metadata: Callable[[], sa.MetaData], named: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        rls.validate_metadata(metadata())
    assert named in str(caught.value) and "reveals another tenant's values" in str(caught.value)


def test_the_message_names_the_fix() -> None:
    with pytest.raises(InvalidInput, match=r'\(UniqueConstraint\("tenant_id", "email"\)\)'):
        rls.validate_metadata(_members(email={"unique": True}))


def test_unique_keys_that_include_tenant_id_are_accepted() -> None:
    metadata = _members(
        sa.UniqueConstraint("tenant_id", "email"),
        sa.Index("members_nick", "nick", "tenant_id", unique=True),
        sa.Index("members_lower_email", "tenant_id", sa.func.lower(sa.column("email")), unique=True),
    )
    assert [t.name for t in rls.validate_metadata(metadata)] == ["members"]


def test_init_and_deploy_refuse_such_tables(tn: Tenantry) -> None:
    metadata = _members(email={"unique": True})
    with pytest.raises(InvalidInput, match="members: unique key on"):
        tn.schema.deploy(metadata)
    other = Tenantry(tn.settings, metadata=metadata)
    try:
        with pytest.raises(InvalidInput, match="members: unique key on"):
            other.schema.init()
    finally:
        other.close()
    with tn.admin() as conn:  # refused before anything was created
        assert conn.execute("SELECT to_regclass(%s)", (f"{tn.settings.pooled_schema}.members",)).fetchone() == (None,)


@contextmanager
def _index(tn: Tenantry, definition: str) -> Iterator[str]:
    """Create ``definition`` (``{t}``: the pooled projects table) as a migration would; dropped
    after. Other tests leave projects of equal names: an index must be unique over them too."""
    name = f"loose_{uuid.uuid4().hex[:8]}"
    table = sql.Identifier(tn.settings.pooled_schema, "projects")
    with tn.admin() as conn:
        conn.execute(sql.SQL(definition).format(i=sql.Identifier(name), t=table))
    try:
        yield name
    finally:
        with tn.admin() as conn:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(tn.settings.pooled_schema, name)))


def _name_project(tn: Tenantry, tenant: Tenant, name: str) -> None:
    with bound(tn, tenant) as conn, conn.transaction():
        conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))


def test_the_oracle_and_that_check_reports_the_index(
    tn: Tenantry, make_tenant: Callable[..., Tenant], cli: Any
) -> None:
    a, b = make_tenant(), make_tenant()
    secret = f"oracle-{uuid.uuid4().hex[:6]}"
    _name_project(tn, b, secret)
    # negative control: without the index, A cannot tell B's names from names nobody uses
    _name_project(tn, a, secret)
    assert tn.schema.unscoped_unique_indexes() == []
    with tn.admin() as conn:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(
                sql.Identifier(tn.settings.pooled_schema, "projects")
            ),
            (a.id,),
        )
    # partial, so that other tests' projects of equal names do not stand in its way
    with _index(tn, "CREATE UNIQUE INDEX {i} ON {t} (name) WHERE name LIKE 'oracle-%'") as index:
        # the attack: A probes a name it cannot read; the error answers "B has it"
        with bound(tn, a) as conn:
            assert conn.execute("SELECT count(*) FROM projects WHERE name = %s", (secret,)).fetchone() == (0,)
        with pytest.raises(psycopg.errors.UniqueViolation):
            _name_project(tn, a, secret)
        _name_project(tn, a, f"oracle-{uuid.uuid4().hex[:6]}")  # a name nobody has goes in
        found = tn.schema.unscoped_unique_indexes()
        assert found == [
            f"{tn.settings.pooled_schema}.projects.{index}:"
            f" CREATE UNIQUE INDEX {index} ON {tn.settings.pooled_schema}.projects USING btree (name)"
            " WHERE (name ~~ 'oracle-%'::text)"
        ]
        code, out, _ = cli("check", "--json")
        assert code == 9 and json.loads(out) == {
            "unprotected": [],
            "unscoped_unique": found,
            "roles": {},
            "differ": {},
            "ok": False,
        }
        code, _, err = cli("check")
        assert code == 9 and index in err and "without tenant_id" in err


@pytest.mark.parametrize(
    "definition",
    [
        # (each limited to rows no other test makes: moved tenants keep their ids, so ids and
        # names repeat across tenants in the shared table)
        "CREATE UNIQUE INDEX {i} ON {t} ((lower(name) || id::text)) WHERE name LIKE 'uk-probe-%'",
        "CREATE UNIQUE INDEX {i} ON {t} (id, name) WHERE name LIKE 'uk-probe-%'",
        "CREATE UNIQUE INDEX {i} ON {t} (id) INCLUDE (tenant_id) WHERE name LIKE 'uk-probe-%'",  # INCLUDE scopes nothing
    ],
    ids=["expression", "partial", "include"],
)
def test_check_reports_expression_partial_and_include_indexes(tn: Tenantry, definition: str) -> None:
    with _index(tn, definition) as index:
        assert [f.split(":")[0] for f in tn.schema.unscoped_unique_indexes()] == [
            f"{tn.settings.pooled_schema}.projects.{index}"
        ]


def test_check_accepts_unique_indexes_with_tenant_id(tn: Tenantry) -> None:
    with _index(tn, "CREATE UNIQUE INDEX {i} ON {t} (lower(name), tenant_id, id)"):
        assert tn.schema.unscoped_unique_indexes() == []


def test_the_model_app_has_none(tn: Tenantry) -> None:
    rls.validate_metadata(Base.metadata)
    assert tn.schema.unscoped_unique_indexes() == []
