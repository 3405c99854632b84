-- What every database holding tenant rows needs, installed (idempotently) into the catalog's
-- database by `tenantry init` and into each database-tier tenant's own database:
-- the context keys, the policy functions, the registry of app tables, and the marker that
-- names the tenant a database belongs to.
-- Runs as the owner role. Placeholders in braces are identifiers bound by psycopg.sql;
-- literal braces are doubled.

CREATE TABLE IF NOT EXISTS tenantry.secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tables deployed into this database's tenant schemas, so that the control plane can reach
-- every row of a tenant (delete, check) without guessing from the system catalogs.
CREATE TABLE IF NOT EXISTS tenantry.app_tables (
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);

-- In a database-tier tenant's database: the one tenant it belongs to. Empty elsewhere.
CREATE TABLE IF NOT EXISTS tenantry.marker (
    tenant_id  uuid PRIMARY KEY,
    singleton  boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);

-- The tenant bound to the current transaction. The app sets tenantry.tenant_id and
-- tenantry.tenant_sig transaction-locally; the signature is an HMAC-SHA256 of the id under a
-- key only the owner can read, so SQL running as the runtime role cannot bind another
-- tenant. The HMAC is computed from its definition, H((K xor opad) || H((K xor ipad) || m)),
-- with the two padded keys stored precomputed.
CREATE OR REPLACE FUNCTION tenantry.current_tenant_id() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tid   text := current_setting('tenantry.tenant_id', true);
    sig   text;
    ikey  bytea;
    okey  bytea;
BEGIN
    IF tid IS NULL OR tid = '' THEN
        RETURN NULL;
    END IF;
    sig := current_setting('tenantry.tenant_sig', true);
    SELECT i.value, o.value INTO ikey, okey
      FROM tenantry.secrets i, tenantry.secrets o
     WHERE i.name = 'context_ipad' AND o.name = 'context_opad';
    IF ikey IS NULL
       OR sig IS DISTINCT FROM encode(sha256(okey || sha256(ikey || convert_to(tid, 'UTF8'))), 'hex')
    THEN
        RAISE EXCEPTION 'tenantry: the tenant context was not set by tenantry'
            USING ERRCODE = '42501',
                  HINT = 'bind tenants with tn.tenant(...); tenantry.tenant_id cannot be set from SQL';
    END IF;
    RETURN tid::uuid;
END
$fn$;

-- Column default of every tenant_id: the bound tenant, or a clear error when none is bound.
CREATE OR REPLACE FUNCTION tenantry.require_tenant_id() RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tid uuid := tenantry.current_tenant_id();
BEGIN
    IF tid IS NULL THEN
        RAISE EXCEPTION 'tenantry: no tenant is bound; tenant-scoped writes need `with tn.tenant(slug):`'
            USING ERRCODE = 'TNB01';
    END IF;
    RETURN tid;
END
$fn$;

-- Called when a transaction is bound in a database-tier tenant's database: the marker must
-- name the tenant being bound, or routing sent the connection to the wrong database.
CREATE OR REPLACE FUNCTION tenantry.check_marker(expected text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner_id uuid;
BEGIN
    SELECT m.tenant_id INTO owner_id FROM tenantry.marker m;
    IF owner_id IS NULL OR expected = '' OR owner_id IS DISTINCT FROM expected::uuid THEN
        RAISE EXCEPTION 'tenantry: this database does not belong to the bound tenant'
            USING ERRCODE = '42501',
                  HINT = 'a routing error: the connection reached another tenant''s database';
    END IF;
    RETURN true;
END
$fn$;

-- The runtime role reads no table here; it may only call the functions above.
REVOKE ALL ON ALL TABLES IN SCHEMA tenantry FROM PUBLIC;
REVOKE ALL ON FUNCTION tenantry.current_tenant_id(), tenantry.require_tenant_id(),
    tenantry.check_marker(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA tenantry TO {runtime};
GRANT EXECUTE ON FUNCTION tenantry.current_tenant_id(), tenantry.require_tenant_id(),
    tenantry.check_marker(text) TO {runtime};
