-- What every database holding tenant rows needs, installed (idempotently) into the catalog's
-- database by `tenantry init` and into each database-tier tenant's own database:
-- the context keys, the policy functions, the registry of app tables, and the marker that
-- names the tenant a database belongs to.
-- Runs as the owner role. Placeholders in braces are identifiers bound by psycopg.sql;
-- literal braces are doubled.

CREATE TABLE IF NOT EXISTS tenantry.secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tables deployed into this database's tenant schemas, so that the control plane can reach
-- every row of a tenant (delete, check) without guessing from the system catalogs.
CREATE TABLE IF NOT EXISTS tenantry.app_tables (
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);

-- In a database-tier tenant's database: the one tenant it belongs to. Empty elsewhere.
CREATE TABLE IF NOT EXISTS tenantry.marker (
    tenant_id  uuid PRIMARY KEY,
    singleton  boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);

-- The key that signs tenant contexts: one row, readable by the owner only. The HMAC is
-- computed from its definition, H((K xor opad) || H((K xor ipad) || m)), with the two padded
-- keys stored precomputed.
CREATE TABLE IF NOT EXISTS tenantry.context_key (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    ipad       bytea NOT NULL,
    opad       bytea NOT NULL
);
-- when a fence (below) was last written here: statements of transactions that began well
-- after it need no look at the fences (their binding was checked when they began)
ALTER TABLE tenantry.context_key ADD COLUMN IF NOT EXISTS fenced_at timestamptz NOT NULL DEFAULT '-infinity';

CREATE OR REPLACE FUNCTION tenantry.refuse_context() RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'tenantry: the tenant context was not set by tenantry'
        USING ERRCODE = '42501',
              HINT = 'bind tenants with tn.tenant(...); tenantry.tenant_id cannot be set from SQL';
END
$fn$;

-- Fences: a binding is only as good as the facts it was made from. Every change of a tenant's
-- status or placement raises its epoch in the catalog, and every binding carries (signed) the
-- epoch it was resolved at. A database the tenant left, or that holds a tenant no longer
-- active, keeps the epoch from which bindings are good again: any older binding is refused at
-- once, in every process, whatever the app still believes.
CREATE TABLE IF NOT EXISTS tenantry.fences (
    tenant_id  uuid PRIMARY KEY,
    epoch      bigint NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('moved', 'suspended', 'archived', 'deleted')),
    fenced_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION tenantry.refuse_stale(reason text) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF reason = 'moved' THEN
        RAISE EXCEPTION 'tenantry: the tenant has moved since this binding was made; bind it again'
            USING ERRCODE = 'TNM01',
                  HINT = 'retry: a new binding reaches the tenant where it lives now';
    END IF;
    RAISE EXCEPTION 'tenantry: the tenant was % after this binding was made', coalesce(reason, 'changed')
        USING ERRCODE = 'TNS01';
END
$fn$;

-- Called by every bind (once per transaction), and by the context view in a transaction that
-- may span a fence: a fenced binding fails at once, typed. plpgsql, so that its one query is
-- planned once per session, not in every statement that reads the context.
-- No SET clause, on the hot path: a function with one saves and restores the settings and
-- looks the search path up again at every call (~40 us a bind on a small server). Instead
-- every name in it is qualified (types, operators, relations, functions), so the caller's
-- search path cannot steer this security definer anywhere (pg_temp is never searched for
-- functions or operators).
CREATE OR REPLACE FUNCTION tenantry.check_binding(tid text, ep text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
AS $fn$
DECLARE
    found pg_catalog.text;
BEGIN
    IF tid OPERATOR(pg_catalog.<>) '' THEN
        SELECT f.reason INTO found FROM tenantry.fences f
         WHERE f.tenant_id OPERATOR(pg_catalog.=) tid::pg_catalog.uuid
           AND f.epoch OPERATOR(pg_catalog.>)
               (CASE WHEN ep OPERATOR(pg_catalog.=) '' THEN 0 ELSE ep::pg_catalog.int8 END);
        IF found IS NOT NULL THEN
            PERFORM tenantry.refuse_stale(found);
        END IF;
    END IF;
    RETURN true;
END
$fn$;

-- The tenant bound to the current transaction and the schema its rows live in, as every
-- policy reads them. The app sets tenantry.tenant_id, tenantry.tenant_schema,
-- tenantry.tenant_epoch and tenantry.tenant_sig transaction-locally; the signature covers id,
-- schema and epoch and is checked against the key, which the runtime role cannot read (the
-- view runs with its owner's rights), so SQL running as the runtime role can neither bind
-- another tenant, nor reach its tenant's rows in another schema, nor raise its epoch above a
-- fence. A security-barrier view rather than a function: PostgreSQL inlines it into the
-- policy's one-time InitPlan, at a fraction of a function call's cost. No tenant: NULL. A
-- forged context: an error. (A context signed without an epoch, by an older tenantry, counts
-- as epoch 0.)
-- Fences: the bind checks them when the transaction begins (tenantry.check_binding); the view
-- looks again, per statement, only in a transaction that began less than 10 s before the
-- last fence written here, or after it (a fence written while it runs: the margin covers the
-- time from the fence's write to its commit). Every other statement pays a comparison.
CREATE OR REPLACE VIEW tenantry.context WITH (security_barrier) AS
SELECT CASE
           WHEN s.tid = '' THEN NULL
           WHEN encode(sha256(k.opad || sha256(k.ipad || convert_to(
                    s.tid || '/' || s.sch || CASE WHEN s.ep = '' THEN '' ELSE '/' || s.ep END, 'UTF8'))), 'hex')
                IS DISTINCT FROM s.sig
               THEN tenantry.refuse_context()
           WHEN k.fenced_at > now() - interval '10 seconds' AND NOT tenantry.check_binding(s.tid, s.ep)
               THEN NULL  -- (never: check_binding raises for a fenced binding)
           ELSE s.tid::uuid
       END AS tenant_id,
       s.sch AS schema_name
  FROM tenantry.context_key k,
       LATERAL (SELECT coalesce(current_setting('tenantry.tenant_id', true), '') AS tid,
                       coalesce(current_setting('tenantry.tenant_schema', true), '') AS sch,
                       coalesce(current_setting('tenantry.tenant_epoch', true), '') AS ep,
                       current_setting('tenantry.tenant_sig', true) AS sig) s;

DROP FUNCTION IF EXISTS tenantry.fence_reason(text, text);

-- What a connection's previous borrower may have left on its session, undone before the next
-- borrower's first statement (tenantry calls it when a pooled connection is handed over):
-- holdable cursors, session settings (tenantry's own, search_path, role), LISTEN, session
-- advisory locks, temporary tables, sequence state (lastval) and statements prepared from
-- SQL, which could shadow the name of tenantry's own prepared bind statement. No SET clause:
-- one would restore, on return, the settings RESET ALL clears; every name is qualified instead.
CREATE OR REPLACE FUNCTION tenantry.reset_session() RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    stmt text;
BEGIN
    -- static statements: parsed once per session, not at every call (CLOSE is PL/pgSQL's own
    -- keyword, so CLOSE ALL goes through EXECUTE)
    EXECUTE 'CLOSE ALL';
    RESET ALL;
    RESET ROLE;
    UNLISTEN *;
    PERFORM pg_catalog.pg_advisory_unlock_all();
    DISCARD TEMP;
    DISCARD SEQUENCES;
    FOR stmt IN SELECT p.name FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql LOOP
        EXECUTE pg_catalog.format('DEALLOCATE %I', stmt);
    END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION tenantry.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE
AS $fn$ SELECT tenant_id FROM tenantry.context $fn$;

-- Column default of every tenant_id: the bound tenant, or a clear error when none is bound.
-- (every name qualified, no SET clause, which every insert would pay: see check_binding)
CREATE OR REPLACE FUNCTION tenantry.require_tenant_id() RETURNS uuid
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    tid pg_catalog.uuid := tenantry.current_tenant_id();
BEGIN
    IF tid IS NULL THEN
        RAISE EXCEPTION 'tenantry: no tenant is bound; tenant-scoped writes need `with tn.tenant(slug):`'
            USING ERRCODE = 'TNB01';
    END IF;
    RETURN tid;
END
$fn$;

-- Called when a transaction is bound in a database-tier tenant's database: the marker must
-- name the tenant being bound, or routing sent the connection to the wrong database.
-- Every name qualified, no SET clause: as tenantry.check_binding (a database-tier bind calls it).
CREATE OR REPLACE FUNCTION tenantry.check_marker(expected text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
AS $fn$
DECLARE
    owner_id pg_catalog.uuid;
BEGIN
    SELECT m.tenant_id INTO owner_id FROM tenantry.marker m;
    IF owner_id IS NULL OR expected OPERATOR(pg_catalog.=) ''
       OR NOT (owner_id OPERATOR(pg_catalog.=) expected::pg_catalog.uuid) THEN
        RAISE EXCEPTION 'tenantry: this database does not belong to the bound tenant'
            USING ERRCODE = '42501',
                  HINT = 'a routing error: the connection reached another tenant''s database';
    END IF;
    RETURN true;
END
$fn$;

-- The tenants frozen in this database (see tenantry.db.tenant_copy.freeze_writes): a moving
-- tenant's freeze triggers are in place from the start of its move, and refuse its writes
-- once its row is here. One row, so the freeze is one short transaction whatever the tables.
CREATE TABLE IF NOT EXISTS tenantry.move_freezes (
    tenant_id  uuid PRIMARY KEY,
    frozen_at  timestamptz NOT NULL DEFAULT now()
);

-- Whether the tenant's writes are refused: its row above, or the advisory lock
-- (lock_class, hashtext(tenant)) that the mover holds from the freeze to the cleanup, and
-- waits for while it freezes (a writer holds it shared until it commits: the mover waits for
-- the writers in flight, and the writers that come meanwhile are refused). The lock also
-- covers a transaction whose snapshot predates the row. Runs with its owner's rights: the
-- runtime role reads no table of this schema.
CREATE OR REPLACE FUNCTION tenantry.move_frozen(tid uuid, lock_class integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(lock_class, hashtext(tid::text)) THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM tenantry.move_freezes f WHERE f.tenant_id = tid);
END
$fn$;

-- Trigger function that refuses a tenant's writes while it is being moved: a clear,
-- retryable error, never a silent loss. TG_ARGV: the owner role, which the mover acts as and
-- which passes (it removes the frozen copy); then the tenant and the lock class of
-- tenantry.move_frozen, which decides. With the owner alone (as older movers put it), the
-- trigger refuses every write.
CREATE OR REPLACE FUNCTION tenantry.refuse_write_while_moving() RETURNS trigger
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
    RAISE EXCEPTION 'tenantry: this tenant is being moved; its writes resume in a moment'
        USING ERRCODE = '55006', HINT = 'retry the transaction';
END
$fn$;

-- The keys of a moving tenant's rows written since its move began (see
-- tenantry.db.tenant_copy.capture_changes): the mover copies what they name again, so the
-- tenant writes on through the bulk copy and only the last few changes wait for the cutover.
CREATE TABLE IF NOT EXISTS tenantry.move_changes (
    tenant_id   uuid NOT NULL,
    table_name  text NOT NULL,
    key         jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS move_changes_tenant ON tenantry.move_changes (tenant_id, table_name);

-- AFTER ROW trigger: TG_ARGV[0] is the tenant, TG_ARGV[1] which row's key to log ('new' or
-- 'old'), the rest the table's key columns. Runs with its owner's rights, so the runtime
-- role's writes are logged without it seeing (or writing) the log.
CREATE OR REPLACE FUNCTION tenantry.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r jsonb;
    k jsonb := '{{}}';
BEGIN
    IF TG_ARGV[1] = 'old' THEN
        r := to_jsonb(OLD);
    ELSE
        r := to_jsonb(NEW);
    END IF;
    FOR i IN 2 .. TG_NARGS - 1 LOOP
        k := k || jsonb_build_object(TG_ARGV[i], r -> TG_ARGV[i]);
    END LOOP;
    INSERT INTO tenantry.move_changes (tenant_id, table_name, key) VALUES (TG_ARGV[0]::uuid, TG_TABLE_NAME, k);
    RETURN NULL;
END
$fn$;

-- The runtime role reads no table here: only the context view, and the functions above.
REVOKE ALL ON ALL TABLES IN SCHEMA tenantry FROM PUBLIC;
REVOKE ALL ON FUNCTION tenantry.current_tenant_id(), tenantry.require_tenant_id(),
    tenantry.check_marker(text), tenantry.refuse_context(), tenantry.capture_change(),
    tenantry.refuse_write_while_moving(), tenantry.refuse_stale(text), tenantry.reset_session(),
    tenantry.check_binding(text, text), tenantry.move_frozen(uuid, integer) FROM PUBLIC;
GRANT USAGE ON SCHEMA tenantry TO {runtime};
GRANT SELECT ON tenantry.context TO {runtime};
GRANT EXECUTE ON FUNCTION tenantry.current_tenant_id(), tenantry.require_tenant_id(),
    tenantry.check_marker(text), tenantry.refuse_context(), tenantry.refuse_stale(text),
    tenantry.reset_session(), tenantry.check_binding(text, text), tenantry.move_frozen(uuid, integer) TO {runtime};
