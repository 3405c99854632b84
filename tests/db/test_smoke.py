from tenantry import Tenantry


def test_tenant_sees_only_its_rows(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant("a"), make_tenant("b")
    with tn.tenant(a.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('alpha')")
    with tn.tenant(b.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('beta')")
        assert conn.execute("SELECT name FROM projects").fetchall() == [("beta",)]
