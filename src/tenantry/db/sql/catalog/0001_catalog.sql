-- tenantry control catalog, version 1: plans, tenants, cells, placements, jobs, audit log.
-- The objects every tenant database needs too (keys, policy functions, the table registry)
-- are in ../local.sql, installed before this.
-- Runs as the owner role. Placeholders in braces are identifiers bound by psycopg.sql;
-- literal braces are doubled.

CREATE TABLE tenantry.plans (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{{0,62}}$'),
    isolation    text NOT NULL CHECK (isolation IN ('pooled', 'schema', 'database')),
    description  text NOT NULL DEFAULT '',
    limits       jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(limits) = 'object'),
    defaults     jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(defaults) = 'object'),
    -- placement policy: a pinned cell, or labels a cell must carry (see tenantry.cells)
    cell         text,
    cell_labels  jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(cell_labels) = 'object'),
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

-- Servers that hold tenant data. The catalog's own server is the cell 'primary' (dsn NULL:
-- the control plane's connection). A dsn is an admin connection string: a secret.
CREATE TABLE tenantry.cells (
    name              text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{{0,62}}$'),
    dsn               text,
    runtime_password  text,
    capacity          integer NOT NULL DEFAULT 1000 CHECK (capacity > 0),
    labels            jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(labels) = 'object'),
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draining')),
    created_at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenantry.cells (name) VALUES ('primary');

-- Where a tenant's rows live. One active placement per tenant; building one is a new row.
CREATE TABLE tenantry.placements (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenantry.tenants (id),
    cell           text NOT NULL REFERENCES tenantry.cells (name),
    isolation      text NOT NULL CHECK (isolation IN ('pooled', 'schema', 'database')),
    database_name  text,
    schema_name    text NOT NULL,
    status         text NOT NULL CHECK (status IN ('building', 'active', 'retired')),
    -- the app migration (Alembic revision) this placement's tables are at; NULL: untracked
    app_revision   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX placements_one_active ON tenantry.placements (tenant_id) WHERE status = 'active';
CREATE UNIQUE INDEX placements_one_building ON tenantry.placements (tenant_id) WHERE status = 'building';

-- Durable control-plane work: the steps done so far, so that a rerun resumes.
CREATE TABLE tenantry.jobs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL,
    tenant_id   uuid REFERENCES tenantry.tenants (id),
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    steps_done  text[] NOT NULL DEFAULT '{{}}',
    payload     jsonb NOT NULL DEFAULT '{{}}',
    attempts    integer NOT NULL DEFAULT 1,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_tenant ON tenantry.jobs (tenant_id, kind, status);

REVOKE ALL ON ALL TABLES IN SCHEMA tenantry FROM PUBLIC;
