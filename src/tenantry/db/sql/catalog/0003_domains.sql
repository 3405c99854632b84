-- tenantry control catalog, version 3: custom domains.
-- A tenant's own hostname (shop.acme.com). It is served only once verified: the tenant proves
-- the hostname reaches this app (HTTP token) or that it controls its DNS (TXT record).
-- Hostnames are stored normalised (lowercase IDNA A-labels, no trailing dot): one spelling,
-- so the primary key makes them unique. Subdomains of the app's base domain need no row.

CREATE TABLE tenantry.domains (
    hostname     text PRIMARY KEY CHECK (hostname ~ '^[a-z0-9]([a-z0-9.-]{{0,251}}[a-z0-9])?$'
                                         AND position('.' in hostname) > 0
                                         AND position('..' in hostname) = 0),
    tenant_id    uuid NOT NULL REFERENCES tenantry.tenants (id),
    -- what the tenant serves at /.well-known/tenantry/<token>, or puts in its TXT record
    token        text NOT NULL UNIQUE CHECK (token ~ '^[A-Za-z0-9_-]{{16,128}}$'),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified')),
    method       text CHECK (method IN ('http', 'dns')),
    verified_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'verified') = (verified_at IS NOT NULL AND method IS NOT NULL))
);
CREATE INDEX domains_tenant ON tenantry.domains (tenant_id);

REVOKE ALL ON tenantry.domains FROM PUBLIC;
