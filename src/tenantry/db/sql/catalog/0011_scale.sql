-- tenantry catalog 0011: a catalog that stays flat at a million tenants.
-- Kept counts of placements per cell (choosing a cell no longer counts every placement), and
-- the indexes the per-tenant paths and the tenant lists need. See docs/performance.md,
-- "A catalog of a million tenants".
-- Runs as the owner role. Placeholders in braces are identifiers bound by psycopg.sql;
-- literal braces are doubled.

-- How many placements (building or active: not retired) each cell holds, kept by the
-- triggers below in the transaction that changes tenantry.placements, so the count commits,
-- rolls back and survives a crash with the change itself, whichever code path makes it.
-- A cell's count is spread over 16 slots, picked by the writing backend, so that concurrent
-- creates do not all queue on one row lock until they commit; the count is the slots' sum
-- (a slot alone may be negative: a placement may be counted in one slot and retired from another).
CREATE TABLE tenantry.cell_counts (
    cell        text NOT NULL REFERENCES tenantry.cells (name) ON UPDATE CASCADE ON DELETE CASCADE,
    slot        smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
    placements  bigint NOT NULL,
    PRIMARY KEY (cell, slot)
);

-- SECURITY DEFINER: whichever role writes placements, the counts are the owner's to change
CREATE FUNCTION tenantry.count_placements() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    backend_slot smallint := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM tenantry.cell_counts;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'retired' THEN
        INSERT INTO tenantry.cell_counts AS k (cell, slot, placements) VALUES (OLD.cell, backend_slot, -1)
        ON CONFLICT (cell, slot) DO UPDATE SET placements = k.placements - 1;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.status <> 'retired' THEN
        INSERT INTO tenantry.cell_counts AS k (cell, slot, placements) VALUES (NEW.cell, backend_slot, 1)
        ON CONFLICT (cell, slot) DO UPDATE SET placements = k.placements + 1;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tenantry.count_placements() FROM PUBLIC;

-- each fires only when the row's contribution changes (an app revision or a digest being
-- recorded, or building -> active, costs nothing)
CREATE TRIGGER placements_counted_insert AFTER INSERT ON tenantry.placements
    FOR EACH ROW WHEN (NEW.status <> 'retired') EXECUTE FUNCTION tenantry.count_placements();
CREATE TRIGGER placements_counted_update AFTER UPDATE OF cell, status ON tenantry.placements
    FOR EACH ROW WHEN (OLD.cell IS DISTINCT FROM NEW.cell
                       OR (OLD.status = 'retired') IS DISTINCT FROM (NEW.status = 'retired'))
    EXECUTE FUNCTION tenantry.count_placements();
CREATE TRIGGER placements_counted_delete AFTER DELETE ON tenantry.placements
    FOR EACH ROW WHEN (OLD.status <> 'retired') EXECUTE FUNCTION tenantry.count_placements();
CREATE TRIGGER placements_counted_truncate AFTER TRUNCATE ON tenantry.placements
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.count_placements();

-- the backfill: the triggers exist already and CREATE TRIGGER holds off writers of
-- placements until this transaction commits, so no change falls between count and trigger
INSERT INTO tenantry.cell_counts (cell, slot, placements)
SELECT cell, 0, count(*) FROM tenantry.placements WHERE status <> 'retired' GROUP BY cell;

-- a tenant's placements whatever their status (deleting a tenant retires them all)
CREATE INDEX placements_tenant ON tenantry.placements (tenant_id);

-- Tenant lists are ordered by (slug COLLATE "C", id): byte order, the same in every
-- database's collation, so that one index serves the list, keyset paging and slug-prefix
-- search (LIKE 'acme%' becomes a range on a C-collated index). One index per filter keeps a
-- filtered page as cheap as an unfiltered one.
CREATE INDEX tenants_list ON tenantry.tenants ((slug COLLATE "C"), id) WHERE status <> 'deleted';
CREATE INDEX tenants_list_plan ON tenantry.tenants (plan, (slug COLLATE "C"), id) WHERE status <> 'deleted';
CREATE INDEX tenants_list_status ON tenantry.tenants (status, (slug COLLATE "C"), id);

REVOKE ALL ON tenantry.cell_counts FROM PUBLIC;
