-- tenantry catalog 0013: the history of every tenant's brand (`tenantry brand history`,
-- `tenantry brand rollback`), as config has its versions.
-- Every brand change (set, reset, rollback) appends the theme it saved, with its author, time
-- and message; a rollback saves an old version's theme as a new version. A version refers to
-- its images by foreign key, so an image stays stored while any version uses it and a
-- rollback brings it back. Append-only, as tenantry.config_versions.
-- Runs as the owner role; written to be rerun safely (a catalog that has it already, or got it
-- from another branch's numbering, is left as it is). Literal braces are doubled.

CREATE TABLE IF NOT EXISTS tenantry.brand_versions (
    tenant_id   uuid NOT NULL REFERENCES tenantry.tenants (id),
    version     integer NOT NULL CHECK (version > 0),
    theme       jsonb NOT NULL CHECK (jsonb_typeof(theme) = 'object'),
    logo        text REFERENCES tenantry.brand_assets (sha256),
    favicon     text REFERENCES tenantry.brand_assets (sha256),
    actor       text NOT NULL,
    message     text NOT NULL DEFAULT '' CHECK (length(message) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, version)
);

CREATE OR REPLACE FUNCTION tenantry.refuse_brand_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tenantry.brand_versions is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION tenantry.refuse_brand_history_change() FROM PUBLIC;
CREATE OR REPLACE TRIGGER brand_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON tenantry.brand_versions
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.refuse_brand_history_change();

-- brands saved before the history was kept: their current version starts it
INSERT INTO tenantry.brand_versions (tenant_id, version, theme, logo, favicon, actor, message, created_at)
SELECT tenant_id, version, theme, logo, favicon, updated_by, 'as it was when brand history began', updated_at
  FROM tenantry.brands
ON CONFLICT (tenant_id, version) DO NOTHING;

REVOKE ALL ON tenantry.brand_versions FROM PUBLIC;
