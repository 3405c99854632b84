"""CLI errors stay one line when the database connection dies under a command: the driver's
own warnings about the broken connection (psycopg_pool's "discarding closed connection:
<psycopg.Connection [BAD] …>", psycopg's "error ignored in rollback of <psycopg.Transaction
…>") never reach the user.

The command runs as a real process: pytest's log capture would otherwise hide what Python's
last-resort handler prints to stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import psycopg

from tenantry import Tenantry
from tests.support import Scratch

_CLI = [sys.executable, "-c", "from tenantry.cli.main import run; run()"]


def test_a_connection_killed_mid_command_gives_one_line(tn: Tenantry, scratch: Scratch, make_tenant) -> None:
    tenant = make_tenant("crash")
    app_name = f"tenantry-cli-crash-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "PG"))}
    env.update(
        TENANTRY_DATABASE_URL=scratch.url,
        TENANTRY_OWNER_ROLE=scratch.owner,
        TENANTRY_RUNTIME_ROLE=scratch.runtime,
        TENANTRY_READER_ROLE=scratch.reader,
        TENANTRY_APP="tests.model_app:Base",
        PGAPPNAME=app_name,
    )
    with psycopg.connect(scratch.url) as holder, psycopg.connect(scratch.url, autocommit=True) as admin:
        # the move marks the tenant moving on a pooled admin connection, and waits for this lock
        holder.execute("SELECT 1 FROM tenantry.tenants WHERE id = %s FOR UPDATE", (tenant.id,))
        proc = subprocess.Popen(
            [*_CLI, "tenants", "move", tenant.slug, "--plan", "business"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                waiting = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                    (app_name,),
                ).fetchone()
                if waiting is not None:
                    break
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the move never waited for the tenant's row"
                time.sleep(0.05)
            admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0],))
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        holder.rollback()
    assert proc.returncode != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "terminating connection" in err
    assert tn.tenants.get(tenant.slug).status.value == "active"
