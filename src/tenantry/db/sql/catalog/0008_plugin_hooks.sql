-- tenantry catalog 0008: the durable queue of plugins' lifecycle hooks.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- Which plugins handle which lifecycle events: written by every process that runs the plugin
-- (at tn.init() and when it starts delivering), read by whichever process changes a tenant,
-- which need not run the plugin itself (the CLI, the admin API).
CREATE TABLE tenantry.plugin_subscriptions (
    plugin      text NOT NULL CHECK (plugin ~ '^[a-z][a-z0-9-]{{0,39}}$'),
    event       text NOT NULL CHECK (event IN ('created', 'suspended', 'resumed', 'archived', 'deleted', 'moved')),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plugin, event)
);

-- One row per (plugin, event of a tenant), written in the transaction that changes the tenant,
-- so that a committed change always has its hook calls queued. A process running the plugin
-- claims the row (status 'running' with a lease), calls the hook and marks it 'done'; a hook
-- that raises is retried after a backoff until the plugin's retries are spent ('failed');
-- a plugin switched off for the tenant by then is not called ('skipped'). The process that
-- made the change is given the first chance (reserved_for, until reserved_until), so the
-- calls run in it right after the commit, as before the queue; anyone takes them after that.
CREATE TABLE tenantry.plugin_hooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plugin          text NOT NULL CHECK (plugin ~ '^[a-z][a-z0-9-]{{0,39}}$'),
    event           text NOT NULL CHECK (event IN ('created', 'suspended', 'resumed', 'archived', 'deleted', 'moved')),
    tenant_id       uuid NOT NULL REFERENCES tenantry.tenants (id),
    tenant          jsonb NOT NULL,
    extra           jsonb NOT NULL DEFAULT '{{}}',
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_after       timestamptz NOT NULL DEFAULT now(),
    reserved_for    text,
    reserved_until  timestamptz,
    claimed_by      text,
    lease_until     timestamptz,
    last_error      text CHECK (length(last_error) <= 2000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- what a deliverer scans: the unfinished rows of its plugins, oldest first
CREATE INDEX plugin_hooks_unfinished ON tenantry.plugin_hooks (plugin, id) WHERE status IN ('pending', 'running');
-- the order check: an earlier unfinished row of the same plugin and tenant holds the later back
CREATE INDEX plugin_hooks_by_tenant ON tenantry.plugin_hooks (plugin, tenant_id, id) WHERE status IN ('pending', 'running');
-- purging finished rows
CREATE INDEX plugin_hooks_finished ON tenantry.plugin_hooks (finished_at) WHERE finished_at IS NOT NULL;

REVOKE ALL ON tenantry.plugin_subscriptions, tenantry.plugin_hooks FROM PUBLIC;
