-- tenantry catalog 0005: per-tenant configuration layers with their history, and feature flags.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- The current configuration layer of one plan or one tenant (exactly one of the two):
-- the layer's own values, and its temporary overrides
-- ({{"limits.max_projects": {{"value": 50, "expires_at": "2026-01-01T00:00:00+00:00"}}}}).
-- App defaults come from the app's config schema and are never stored.
CREATE TABLE tenantry.config_layers (
    plan        text REFERENCES tenantry.plans (name) ON UPDATE CASCADE,
    tenant_id   uuid REFERENCES tenantry.tenants (id),
    version     integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    document    jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(document) = 'object'),
    overrides   jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(overrides) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((plan IS NULL) <> (tenant_id IS NULL))
);
CREATE UNIQUE INDEX config_layers_plan ON tenantry.config_layers (plan) WHERE plan IS NOT NULL;
CREATE UNIQUE INDEX config_layers_tenant ON tenantry.config_layers (tenant_id) WHERE tenant_id IS NOT NULL;

-- Every version a layer had, append-only: history, diff and rollback read it.
CREATE TABLE tenantry.config_versions (
    plan        text REFERENCES tenantry.plans (name) ON UPDATE CASCADE,
    tenant_id   uuid REFERENCES tenantry.tenants (id),
    version     integer NOT NULL CHECK (version > 0),
    document    jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    overrides   jsonb NOT NULL CHECK (jsonb_typeof(overrides) = 'object'),
    actor       text NOT NULL,
    message     text NOT NULL DEFAULT '' CHECK (length(message) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((plan IS NULL) <> (tenant_id IS NULL))
);
CREATE UNIQUE INDEX config_versions_plan ON tenantry.config_versions (plan, version) WHERE plan IS NOT NULL;
CREATE UNIQUE INDEX config_versions_tenant ON tenantry.config_versions (tenant_id, version) WHERE tenant_id IS NOT NULL;

CREATE FUNCTION tenantry.refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tenantry.config_versions is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER config_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON tenantry.config_versions
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.refuse_history_change();

-- Feature flags. A flag serves one of its variants: `off_variant` while killed or outside its
-- schedule, else the first matching rule's, else its rollout's split, else `default_variant`.
CREATE TABLE tenantry.flags (
    key              text PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{{0,99}}$'),
    kind             text NOT NULL CHECK (kind IN ('boolean', 'multivariate')),
    description      text NOT NULL DEFAULT '',
    variants         jsonb NOT NULL CHECK (jsonb_typeof(variants) = 'object'),
    default_variant  text NOT NULL,
    off_variant      text NOT NULL,
    rules            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(rules) = 'array'),
    rollout          jsonb CHECK (rollout IS NULL OR jsonb_typeof(rollout) = 'object'),
    killed           boolean NOT NULL DEFAULT false,
    enable_at        timestamptz,
    disable_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text NOT NULL,
    CHECK (enable_at IS NULL OR disable_at IS NULL OR enable_at < disable_at)
);

REVOKE ALL ON tenantry.config_layers, tenantry.config_versions, tenantry.flags FROM PUBLIC;
