-- tenantry control catalog, version 2: spare placements.
-- A spare is a schema (or a database) built ahead of time, with the app's tables secured by
-- RLS, for a tenant that does not exist yet: creating a schema- or database-tier tenant then
-- claims one in a single catalog transaction (the tenant row takes the spare's id, from which
-- the schema or database name derives) instead of running the DDL. A spare has no tenant row
-- and no placement, so nothing routes to it. See tenantry.services.spares.
-- Runs as the owner role. Placeholders in braces are identifiers bound by psycopg.sql;
-- literal braces are doubled.

CREATE TABLE tenantry.spares (
    id             uuid PRIMARY KEY,
    cell           text NOT NULL REFERENCES tenantry.cells (name),
    isolation      text NOT NULL CHECK (isolation IN ('schema', 'database')),
    database_name  text,
    schema_name    text NOT NULL,
    -- what the spare was built for: the app's tables (a hash of their DDL and of tenantry's
    -- policy) and the app migration its tables are stamped at (NULL: untracked). A spare is
    -- claimed only when both equal the claiming process's.
    fingerprint    text NOT NULL,
    app_revision   text,
    -- building: steps_done so far (a rerun of the fill finishes it); ready: claimable;
    -- dropping: being removed (a rerun finishes that)
    status         text NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'ready', 'dropping')),
    steps_done     text[] NOT NULL DEFAULT '{{}}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spares_ready ON tenantry.spares (isolation, cell, fingerprint, created_at) WHERE status = 'ready';

REVOKE ALL ON tenantry.spares FROM PUBLIC;
