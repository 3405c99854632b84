-- tenantry catalog, version 1: plans, tenants, audit log, secrets, the app-table registry,
-- and the functions the row-level security policies call.
-- Runs as the owner role. Placeholders in braces are identifiers bound by psycopg.sql;
-- literal braces are doubled.

CREATE TABLE tenantry.secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenantry.secrets FROM PUBLIC;

CREATE TABLE tenantry.plans (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{{0,62}}$'),
    isolation    text NOT NULL CHECK (isolation IN ('pooled', 'schema', 'database')),
    description  text NOT NULL DEFAULT '',
    limits       jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(limits) = 'object'),
    defaults     jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(defaults) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenantry.plans (name, isolation, description, limits) VALUES
  ('free', 'pooled', 'Shared tables guarded by row-level security',
   '{{"requests_per_second": 10, "concurrency": 5, "storage_mb": 500, "statement_timeout_ms": 5000}}'),
  ('business', 'schema', 'A schema of its own in a shared database',
   '{{"requests_per_second": 100, "concurrency": 20, "storage_mb": 20000, "statement_timeout_ms": 15000}}'),
  ('enterprise', 'database', 'A database of its own, on a shared or dedicated server',
   '{{"requests_per_second": 1000, "concurrency": 100, "storage_mb": null, "statement_timeout_ms": 60000}}')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE tenantry.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- a DNS label that cannot be mistaken for a tenant id (uuid, with or without dashes)
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?$'
                                     AND slug !~ '^[0-9a-f]{{8}}-?[0-9a-f]{{4}}-?[0-9a-f]{{4}}-?[0-9a-f]{{4}}-?[0-9a-f]{{12}}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan        text NOT NULL REFERENCES tenantry.plans (name) ON UPDATE CASCADE,
    status      text NOT NULL DEFAULT 'provisioning' CHECK (status IN
                  ('provisioning', 'active', 'suspended', 'archived', 'deleted', 'moving')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- a deleted tenant keeps its catalog row as a tombstone; its slug may be used again
CREATE UNIQUE INDEX tenants_live_slug ON tenantry.tenants (slug) WHERE status <> 'deleted';

CREATE TABLE tenantry.audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target       text NOT NULL,
    before       jsonb,
    after        jsonb
);
CREATE INDEX audit_log_target ON tenantry.audit_log (target_type, target, at);

-- Tables deployed into tenant placements, so that the control plane can reach every row of a
-- tenant (delete, check) without guessing from the system catalogs.
CREATE TABLE tenantry.app_tables (
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);

-- The tenant bound to the current transaction. The app sets tenantry.tenant_id and
-- tenantry.tenant_sig with SET LOCAL; the signature is an HMAC-SHA256 of the id under a key
-- only the owner can read, so SQL running as the runtime role cannot bind another tenant.
-- The HMAC is computed from its definition: H((K xor opad) || H((K xor ipad) || m)), with the
-- two padded keys stored precomputed.
CREATE FUNCTION tenantry.current_tenant_id() RETURNS uuid
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
CREATE FUNCTION tenantry.require_tenant_id() RETURNS uuid
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

-- The runtime role reads nothing of the catalog: tenant lookups go through the control
-- plane's connection. It may only call the two functions the policies and defaults use.
REVOKE ALL ON ALL TABLES IN SCHEMA tenantry FROM PUBLIC;
REVOKE ALL ON FUNCTION tenantry.current_tenant_id(), tenantry.require_tenant_id() FROM PUBLIC;
GRANT USAGE ON SCHEMA tenantry TO {runtime};
GRANT EXECUTE ON FUNCTION tenantry.current_tenant_id(), tenantry.require_tenant_id() TO {runtime};
