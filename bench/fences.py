"""How soon a binding that is already open is refused after its tenant is suspended or moved.

Run::

    python bench/fences.py [--server embedded|system] [--suspensions 20] [--moves 4]

Set-up
    A scratch catalog on the chosen server, the model tables of ``bench/`` (one pooled table),
    a few tenants. Two Tenantry objects stand for two processes: *app* holds the open binding,
    *admin* makes the change.

What is measured
    suspension  app holds ``with tn.tenant(slug):`` and runs ``SELECT count(*)`` in a loop, each
                in a transaction of its own, while admin calls ``suspend(slug)``. The latency is
                the time from the start of the ``suspend`` call to app's first refusal
                (``TenantSuspended``); the call's own duration is printed beside it, and any
                statement that succeeded after the call returned is counted as a violation.
    move        the same loop while admin moves the tenant (pooled to schema, and back). The
                latency is the time from the flip's commit (the job's ``flipped_at``) to app's
                first refusal (``TenantMoved``); reads before the flip are served all along.

The last line is the worst latency over the goal of 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from _scratch import add_server_arguments, environment, run_took, scratch_database, server, verdict
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import TenantMoved, Tenantry, TenantScoped, TenantSuspended

GOAL_SECONDS = 1.0


class Base(DeclarativeBase):
    pass


class Item(TenantScoped, Base):
    __tablename__ = "fence_items"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=True)


class Looper:
    """Reads through an open binding in a loop; notes when the last read that succeeded began,
    and the first refusal."""

    def __init__(self, app: Tenantry, slug: str, refusal: type[Exception]) -> None:
        self.app, self.slug, self.refusal = app, slug, refusal
        self.last_ok = 0.0
        self.refused_at: float | None = None
        self.reads = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        with self.app.tenant(self.slug):
            while self.refused_at is None:
                began = time.time()
                try:
                    with self.app.connection() as conn:
                        conn.execute("SELECT count(*) FROM fence_items").fetchone()
                    self.last_ok = began  # (a read begun before the change may end after it)
                    self.reads += 1
                    self.ready.set()
                except self.refusal:
                    self.refused_at = time.time()

    def join(self) -> None:
        self.thread.join(30)
        assert self.refused_at is not None, "the open binding was never refused"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--suspensions", type=int, default=20)
    parser.add_argument("--moves", type=int, default=4)
    args = parser.parse_args()
    started = datetime.now(UTC)
    print(f"bench/fences.py on {args.server}: {environment(started)}")
    with server(args.server, args.url) as server_url, scratch_database(server_url) as scratch:
        admin = Tenantry(scratch.settings(), metadata=Base.metadata, actor="bench-admin")
        app = Tenantry(scratch.settings(), metadata=Base.metadata, actor="bench-app")
        try:
            admin.schema.init()
            suspend_latency, call, violations = [], [], 0
            for _ in range(args.suspensions):
                slug = admin.tenants.create(f"fs-{uuid.uuid4().hex[:8]}").slug
                loop = Looper(app, slug, TenantSuspended)
                t0 = time.time()
                admin.tenants.suspend(slug)
                t1 = time.time()
                loop.join()
                assert loop.refused_at is not None
                suspend_latency.append(loop.refused_at - t0)
                call.append(t1 - t0)
                violations += loop.last_ok > t1
            move_latency = []
            slug = admin.tenants.create(f"fm-{uuid.uuid4().hex[:8]}").slug
            for n in range(args.moves):
                loop = Looper(app, slug, TenantMoved)
                admin.tenants.move(slug, plan="business" if n % 2 == 0 else "free")
                loop.join()
                with admin.admin() as conn:
                    row = conn.execute(
                        "SELECT (payload->>'flipped_at')::float FROM tenantry.jobs WHERE tenant_id ="
                        " (SELECT id FROM tenantry.tenants WHERE slug = %s) AND kind = 'move'"
                        " ORDER BY created_at DESC LIMIT 1",
                        (slug,),
                    ).fetchone()
                assert row is not None and loop.refused_at is not None
                move_latency.append(loop.refused_at - float(row[0]))
        finally:
            app.close()
            admin.close()

    def ms(values: list[float]) -> str:
        return f"p50 {statistics.median(values) * 1000:7.1f} ms, max {max(values) * 1000:7.1f} ms"

    print(f"suspension: refusal after the call started  {ms(suspend_latency)}  (the call itself: {ms(call)})")
    print(f"            reads begun after the call returned and served: {violations} of {args.suspensions} runs")
    print(f"move:       refusal after the flip committed   {ms(move_latency)}  ({args.moves} moves)")
    worst = max(suspend_latency + move_latency)
    print(run_took(started))
    print(
        f"fences_refusal_latency_ratio {worst / GOAL_SECONDS:.3f} (worst {worst * 1000:.1f} ms over the"
        f" {GOAL_SECONDS:g} s goal: {verdict(worst, GOAL_SECONDS)})"
    )


if __name__ == "__main__":
    main()
