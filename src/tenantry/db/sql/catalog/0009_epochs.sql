-- tenantry catalog 0009: tenant epochs (fences against stale bindings).
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- Raised by every change of a tenant's status or placement. A binding carries, signed, the
-- epoch it was resolved at; the databases a tenant left, or that hold a tenant no longer
-- active, refuse older bindings (tenantry.fences, in each database holding tenant rows).
ALTER TABLE tenantry.tenants ADD COLUMN epoch bigint NOT NULL DEFAULT 1 CHECK (epoch > 0);

-- The digest of the local objects (sql/local.sql: the context view, the policy functions, the
-- session reset) installed in a database-tier placement's own database: `tenantry init`
-- refreshes the databases whose objects are older than the running tenantry's.
ALTER TABLE tenantry.placements ADD COLUMN local_digest text;
