-- The trigger function of a restore in place (tenantry.services.backups.inplace): as
-- tenantry.refuse_write_while_moving (sql/local.sql), with the error of a restore, which the
-- client names TenantRestoring (SQLSTATE TNR01; retry in a moment). Installed on demand in
-- the database of the placement being restored, as the owner role.
CREATE OR REPLACE FUNCTION tenantry.refuse_write_while_restoring() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_NARGS > 0 AND current_user = TG_ARGV[0] THEN
        RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_NARGS > 2 THEN
        IF NOT tenantry.move_frozen(TG_ARGV[1]::uuid, TG_ARGV[2]::integer) THEN
            RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
        END IF;
    END IF;
    RAISE EXCEPTION 'tenantry: this tenant is being restored from a backup; its writes resume in a moment'
        USING ERRCODE = 'TNR01', HINT = 'retry the transaction';
END
$fn$;
REVOKE ALL ON FUNCTION tenantry.refuse_write_while_restoring() FROM PUBLIC;
