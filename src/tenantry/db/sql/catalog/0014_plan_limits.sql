-- tenantry catalog 0014: plans as the edge reads them, and a notice on every change of one.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- what the edge of a data-plane process reads to enforce a plan's limits (requests per
-- second, burst, concurrency): name and limits, nothing else
CREATE VIEW tenantry_routing.plans AS
SELECT name, limits FROM tenantry.plans;

-- every change of a plan (made by any path: the CLI, the API, SQL by hand) announces
-- `plan:<name>` on the catalog channel when it commits, so that every process drops the
-- limits it cached for the plan (tenantry.core.events.EventKind.PLAN)
CREATE FUNCTION tenantry.notify_plan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('tenantry_catalog', 'plan:' || OLD.name);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.name <> OLD.name) THEN
        PERFORM pg_notify('tenantry_catalog', 'plan:' || NEW.name);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER plans_notify AFTER INSERT OR UPDATE OR DELETE ON tenantry.plans
    FOR EACH ROW EXECUTE FUNCTION tenantry.notify_plan();
