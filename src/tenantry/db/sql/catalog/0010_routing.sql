-- tenantry catalog 0010: the routing views, all a data-plane process reads of the catalog.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.
--
-- The schema tenantry_routing is created by the admin before this runs (owned by the owner
-- role). `tenantry init` grants the reader role USAGE on it and SELECT on these views, and
-- nothing else: no USAGE on the schema tenantry, so no catalog table is within its reach, and
-- the views leave out every secret column (cells' DSNs and passwords, tokens' hashes, config
-- history, audit rows). Config layers are shown as stored: a secret field is sealed there
-- (AES-GCM), and opens only in a process that holds TENANTRY_SECRET_KEYS.

-- the catalog's version: a data plane checks it is at its own head
CREATE VIEW tenantry_routing.catalog AS
SELECT coalesce(max(version), 0) AS version FROM tenantry.schema_migrations;

-- the keys that sign a binding's tenant context (sql/local.sql): a data plane binds tenants
CREATE VIEW tenantry_routing.context_key AS
SELECT ipad, opad FROM tenantry.context_key;

CREATE VIEW tenantry_routing.tenants AS
SELECT id, slug, name, plan, status, created_at, updated_at, epoch FROM tenantry.tenants;

-- active placements only: where each tenant's rows are now
CREATE VIEW tenantry_routing.placements AS
SELECT tenant_id, cell, isolation, database_name, schema_name, status
  FROM tenantry.placements WHERE status = 'active';

-- a cell's name and labels (flag rules read its region), never its DSN or passwords
CREATE VIEW tenantry_routing.cells AS
SELECT name, labels FROM tenantry.cells;

CREATE VIEW tenantry_routing.domains AS
SELECT hostname, tenant_id, token, status FROM tenantry.domains;

CREATE VIEW tenantry_routing.config_layers AS
SELECT plan, tenant_id, document, overrides FROM tenantry.config_layers;

CREATE VIEW tenantry_routing.flags AS
SELECT key, kind, description, variants, default_variant, off_variant, rules, rollout, killed,
       enable_at, disable_at, created_at, updated_at, updated_by
  FROM tenantry.flags;

CREATE VIEW tenantry_routing.plugin_enablement AS
SELECT plugin, plan, tenant_id, enabled FROM tenantry.plugin_enablement;

CREATE VIEW tenantry_routing.brands AS
SELECT tenant_id, theme, logo, favicon, version, updated_at, updated_by FROM tenantry.brands;

CREATE VIEW tenantry_routing.brand_assets AS
SELECT sha256, content_type, bytes FROM tenantry.brand_assets;

REVOKE ALL ON ALL TABLES IN SCHEMA tenantry_routing FROM PUBLIC;
