"""The worker processes: at most ``jobs`` at once, a dead worker fails only its placement,
and a caller's unguarded script is not run again in the workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg

from tenantry import Tenantry
from tenantry.services import app_migrations
from tests.migrations.support import FIXTURE, HEAD, add_revision, make_world
from tests.support import Scratch


def test_jobs_bound_the_placements_migrating_at_once(mtn: Tenantry, fresh_scratch: Scratch, scripts_copy: Path) -> None:
    make_world(mtn, fresh_scratch, {"schema": 3, "database": 2})
    add_revision(scripts_copy, "0003_slow", HEAD, "    op.execute('SELECT pg_sleep(0.4) /* jobs-probe */')")
    app_migrations.migrate(mtn.plane, directory=FIXTURE)  # to 0002 first
    peak, stop = [0], threading.Event()

    def watch() -> None:
        with psycopg.connect(fresh_scratch.server_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                    " AND state = 'active' AND query LIKE %s",
                    ("%pg_sleep(0.4) /* jobs-probe%",),
                ).fetchone()
                peak[0] = max(peak[0], row[0] if row else 0)
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = app_migrations.migrate(mtn.plane, jobs=2, directory=str(scripts_copy))
    finally:
        stop.set()
        watcher.join()
    assert len(report.migrated) == 6 and not report.failed
    assert peak[0] == 2


def test_a_dying_worker_fails_only_its_placement(mtn: Tenantry, fresh_scratch: Scratch, scripts_copy: Path) -> None:
    world = make_world(mtn, fresh_scratch, {"schema": 2})
    app_migrations.migrate(mtn.plane, directory=FIXTURE)
    doomed = world.by_tier("schema")[0]
    add_revision(
        scripts_copy,
        "0003_exit",
        HEAD,
        textwrap.indent(
            textwrap.dedent(f"""\
        import os
        if op.get_bind().exec_driver_sql("SELECT current_schema()").scalar() == {world.schema(doomed)!r}:
            os._exit(3)
        op.add_column("labels", sa.Column("color", sa.Text()))"""),
            "    ",
        ),
    )
    report = app_migrations.migrate(mtn.plane, jobs=1, directory=str(scripts_copy))
    assert [(r.label, r.error) for r in report.failed] == [(doomed.slug, "the worker process exited with code 3")]
    assert len(report.migrated) == 2  # a new worker took the placements after it
    assert world.version(doomed) == HEAD and not world.has_column(doomed, "labels", "color")
    assert all(world.version(t) == "0003_exit" for t in world.targets() if t is not doomed)


def test_an_unguarded_calling_script_runs_once(mtn: Tenantry, fresh_scratch: Scratch, tmp_path: Path) -> None:
    make_world(mtn, fresh_scratch, {"schema": 1})
    script = tmp_path / "deploy.py"
    script.write_text(
        textwrap.dedent(f"""\
        import json
        from tenantry import Settings, Tenantry
        from tenantry.services import app_migrations
        print("script body ran")
        tn = Tenantry(Settings.from_env())
        print(json.dumps(app_migrations.migrate(tn.plane, jobs=2, directory={FIXTURE!r}).counts()))
        tn.close()
        """)
    )
    env = dict(
        os.environ,
        TENANTRY_DATABASE_URL=fresh_scratch.url,
        TENANTRY_OWNER_ROLE=fresh_scratch.owner,
        TENANTRY_RUNTIME_ROLE=fresh_scratch.runtime,
        TENANTRY_READER_ROLE=fresh_scratch.reader,
    )
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "script body ran" and len(lines) == 2
    assert json.loads(lines[1])["migrated"] == 2
