-- tenantry catalog 0017: per-tenant backups (tenantry.services.backups).
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- One row per backup taken: 'running' while its archive is written (an interrupted one stays
-- so until a rerun or `tenantry backups delete` clears it), 'complete' once its manifest is
-- in place, 'failed' with the error. The archive itself lives in the storage at `location`
-- (relative to `storage`, the TENANTRY_BACKUP_URL it was written to).
CREATE TABLE IF NOT EXISTS tenantry.backups (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenantry.tenants (id),
    tenant_slug   text NOT NULL,
    plan          text NOT NULL,
    isolation     text NOT NULL CHECK (isolation IN ('pooled', 'schema', 'database')),
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'complete', 'failed')),
    storage       text NOT NULL,
    location      text NOT NULL,
    encrypted     boolean NOT NULL DEFAULT false,
    rows          bigint,
    size          bigint,
    manifest      jsonb,
    error         text,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX IF NOT EXISTS backups_tenant ON tenantry.backups (tenant_id, created_at DESC);

REVOKE ALL ON tenantry.backups FROM PUBLIC;

-- Each plan's backup schedule: a backup of each of its active tenants every `every`, the
-- newest `keep` complete ones kept (`tenantry backups run-due`, `tenantry backups prune`).
CREATE TABLE IF NOT EXISTS tenantry.backup_schedules (
    plan        text PRIMARY KEY REFERENCES tenantry.plans (name) ON UPDATE CASCADE ON DELETE CASCADE,
    every       interval NOT NULL CHECK (every > interval '0'),
    keep        integer NOT NULL CHECK (keep >= 1),
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenantry.backup_schedules FROM PUBLIC;
