-- tenantry catalog 0015: per-tenant overrides of the plan's limits, as the catalog keeps them
-- and as a data-plane process reads them, and a notice on every change of one.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- one row per tenant that has overrides: the keys it sets over its plan's `limits` (a key
-- set to null lifts that limit for the tenant; a key absent falls back to the plan's)
CREATE TABLE tenantry.tenant_limits (
    tenant_id   uuid PRIMARY KEY REFERENCES tenantry.tenants (id) ON DELETE CASCADE,
    limits      jsonb NOT NULL CHECK (jsonb_typeof(limits) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- what the edge and the bind of a data-plane process read to merge a tenant's overrides
CREATE VIEW tenantry_routing.tenant_limits AS
SELECT tenant_id, limits FROM tenantry.tenant_limits;

-- every change (made by any path) announces `limits:<tenant id>` on the catalog channel when
-- it commits, so that every process drops what it cached of the tenant's limits
-- (tenantry.core.events.EventKind.LIMITS)
CREATE FUNCTION tenantry.notify_tenant_limits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('tenantry_catalog', 'limits:' || OLD.tenant_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.tenant_id <> OLD.tenant_id) THEN
        PERFORM pg_notify('tenantry_catalog', 'limits:' || NEW.tenant_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenant_limits_notify AFTER INSERT OR UPDATE OR DELETE ON tenantry.tenant_limits
    FOR EACH ROW EXECUTE FUNCTION tenantry.notify_tenant_limits();
