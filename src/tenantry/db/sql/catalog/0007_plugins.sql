-- tenantry catalog 0007: which plugins run for which plans and tenants, and what they raised.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- A plugin is switched on or off for a plan (every tenant on it) or for one tenant; the
-- tenant's row wins over its plan's, and a plugin with neither is off. Exactly one of plan
-- and tenant_id is set. A plugin's own settings are not kept here but in the tenant's
-- configuration layers (its config section), with their history.
CREATE TABLE tenantry.plugin_enablement (
    plugin      text NOT NULL CHECK (plugin ~ '^[a-z][a-z0-9-]{{0,39}}$'),
    plan        text REFERENCES tenantry.plans (name) ON UPDATE CASCADE ON DELETE CASCADE,
    tenant_id   uuid REFERENCES tenantry.tenants (id),
    enabled     boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    CHECK ((plan IS NULL) <> (tenant_id IS NULL))
);
CREATE UNIQUE INDEX plugin_enablement_plan ON tenantry.plugin_enablement (plugin, plan) WHERE plan IS NOT NULL;
CREATE UNIQUE INDEX plugin_enablement_tenant ON tenantry.plugin_enablement (plugin, tenant_id) WHERE tenant_id IS NOT NULL;
-- what a tenant's view reads: its own rows and its plan's
CREATE INDEX plugin_enablement_by_tenant ON tenantry.plugin_enablement (tenant_id) WHERE tenant_id IS NOT NULL;
CREATE INDEX plugin_enablement_by_plan ON tenantry.plugin_enablement (plan) WHERE plan IS NOT NULL;

-- What plugins raised, one row per (plugin, hook, tenant) with a count: a plugin failing on
-- every request grows a counter, not the table. tenant_id is NULL for calls about no tenant.
CREATE TABLE tenantry.plugin_errors (
    plugin      text NOT NULL CHECK (plugin ~ '^[a-z][a-z0-9-]{{0,39}}$'),
    hook        text NOT NULL CHECK (length(hook) BETWEEN 1 AND 100),
    tenant_id   uuid,
    count       bigint NOT NULL DEFAULT 1 CHECK (count > 0),
    first_at    timestamptz NOT NULL DEFAULT now(),
    last_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text NOT NULL CHECK (length(last_error) <= 2000),
    UNIQUE NULLS NOT DISTINCT (plugin, hook, tenant_id)
);

REVOKE ALL ON tenantry.plugin_enablement, tenantry.plugin_errors FROM PUBLIC;
