"""docs/plugins.md's "Tables with their own migrations": the plugin and its base revision, as
printed, register and migrate a deployed app; the Alembic recipe writes revisions that make a
valid branch, and `tenantry migrate` applies the next one."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tenantry import Tenantry
from tenantry.migrations.scripts import plugin_chain
from tenantry.services import app_migrations
from tests.model_app import Base
from tests.support import Scratch

ROOT = Path(__file__).resolve().parents[2]


def _block(name: str) -> str:
    doc = (ROOT / "docs" / "plugins.md").read_text()
    found = re.search(rf"<!-- {name}:begin -->\n```(?:python|bash)\n(.*?)```\n<!-- {name}:end -->", doc, re.S)
    assert found, name
    return found.group(1)


def _alembic(cwd: Path, line: str) -> None:
    args = [sys.executable, "-m", "alembic", *shlex.split(line.split("#")[0])[1:]]
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _recipe(cwd: Path) -> list[str]:
    """Set up ``cwd`` as the recipe says (alembic init, version_locations); its revision lines."""
    lines = [line for line in _block("migrations-recipe").splitlines() if line.strip()]
    _alembic(cwd, lines[0])
    setting = re.search(r"in alembic.ini: (version_locations = .*)$", lines[1])
    assert setting
    ini = cwd / "alembic.ini"
    ini.write_text(re.sub(r"^# version_locations = .*$", setting.group(1), ini.read_text(), count=1, flags=re.M))
    return lines[2:]


def test_the_recipe_writes_a_valid_branch(tmp_path: Path) -> None:
    (tmp_path / "audit_export" / "migrations").mkdir(parents=True)
    for line in _recipe(tmp_path):
        _alembic(tmp_path, line)
    _directory, revisions = plugin_chain("audit-export", "audit_export", tmp_path / "audit_export" / "migrations")
    assert len(revisions) == 2


def test_the_documented_plugin_migrates_a_deployed_app(
    tmp_path: Path, fresh_scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "audit_export"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(_block("migrations-plugin"))
    (package / "migrations" / "ae01_runs.py").write_text(_block("migrations-base"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "audit_export", raising=False)
    module = importlib.import_module("audit_export")
    try:
        plain = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, actor="pytest")
        plain.schema.init()
        tenant = plain.tenants.create(f"doc-{uuid.uuid4().hex[:8]}", plan="business")
        plain.close()
        tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, plugins=[module.AuditExport()], actor="pytest")
        try:
            report = app_migrations.migrate(tn.plane)
            assert not report.failed and report.head == "ae01_runs"
            assert {(r.steps, r.secured) for r in report.migrated} == {(("ae01_runs",), ("audit_export_runs",))}
            with tn.tenant(tenant.id), tn.connection() as conn:
                conn.execute("INSERT INTO audit_export_runs (target) VALUES ('s3')")
                assert conn.execute("SELECT target FROM audit_export_runs").fetchall() == [("s3",)]
            # the next revision, written by the recipe's last line, on top of the hand-written base
            _alembic(tmp_path, _recipe(tmp_path)[-1])
            (new,) = [p for p in (package / "migrations").glob("*.py") if p.name != "ae01_runs.py"]
            source = new.read_text().replace(
                "    pass", "    op.add_column('audit_export_runs', sa.Column('status', sa.Text()))", 1
            )
            new.write_text(source)
            again = app_migrations.migrate(tn.plane)
            revision = re.search(r"^revision: str = '(\w+)'", source, re.M)
            assert revision and again.head == revision.group(1) and not again.failed
            assert {r.steps for r in again.migrated} == {(revision.group(1),)} and len(again.migrated) == 2
        finally:
            tn.close()
    finally:
        sys.modules.pop("audit_export", None)
