-- tenantry catalog 0019: a backup's record may name a tenant this catalog does not know, for
-- an archive registered from storage after the catalog was lost or rebuilt (`tenantry
-- backups import`): the record keeps the tenant's id and slug as the archive gives them, and
-- the archive restores as a clone. Deleted tenants keep their rows, so records of backups
-- taken here still find their tenant.
ALTER TABLE tenantry.backups DROP CONSTRAINT IF EXISTS backups_tenant_id_fkey;
