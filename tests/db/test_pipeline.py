"""psycopg's pipeline mode (``with conn.pipeline():``) on tenantry connections, on every tier:
each transaction in the pipeline is bound, and sees only its tenant's rows."""

from __future__ import annotations

import asyncio

from tenantry import Tenantry

WHO = "SELECT current_setting('tenantry.tenant_id'), array_agg(name ORDER BY name) FROM projects"


def test_pipeline_binds_each_transaction(tn: Tenantry, make_tier_tenant) -> None:
    a, b = make_tier_tenant(), make_tier_tenant()
    with tn.tenant(b.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('b-row')")
    with tn.tenant(a.slug), tn.connection() as conn:
        with conn.pipeline():
            conn.execute("INSERT INTO projects (name) VALUES ('p1')")
            first = conn.execute(WHO)
            conn.commit()
            # a new transaction inside the same pipeline is bound again
            with conn.transaction():
                conn.execute("INSERT INTO projects (name) VALUES ('p2')")
            second = conn.execute(WHO)
            # the bind statement deallocated behind tenantry's back: rolled back and bound again
            conn.execute("DEALLOCATE ALL")
            conn.commit()
            third = conn.execute(WHO)
        assert first.fetchone() == (str(a.id), ["p1"])
        assert second.fetchone() == (str(a.id), ["p1", "p2"])
        assert third.fetchone() == (str(a.id), ["p1", "p2"])
        # psycopg's own prepared statements went with DEALLOCATE ALL too, which psycopg does not
        # notice in pipeline mode: this connection must not serve the next test
        conn.close()


def test_async_pipeline_binds_each_transaction(tn: Tenantry, make_tier_tenant) -> None:
    a = make_tier_tenant()

    async def main() -> tuple[object, object]:
        try:
            async with tn.tenant(a.slug), tn.async_connection() as conn:
                async with conn.pipeline():
                    await conn.execute("INSERT INTO projects (name) VALUES ('q1')")
                    first = await conn.execute(WHO)
                    await conn.commit()
                    async with conn.transaction():
                        await conn.execute("INSERT INTO projects (name) VALUES ('q2')")
                    second = await conn.execute(WHO)
                return await first.fetchone(), await second.fetchone()
        finally:
            await tn.router.aclose()

    assert asyncio.run(main()) == ((str(a.id), ["q1"]), (str(a.id), ["q1", "q2"]))
