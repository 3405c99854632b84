-- tenantry control catalog, version 6: white-label brands and their images.
-- Images are content-addressed (sha256 of the bytes) and shared by every brand that uses the
-- same bytes; a brand references them by foreign key, so no brand can point at a missing
-- image, and the serving route answers for an image only if the asking tenant's own brand
-- references it. Themes are validated by tenantry before they are written.

CREATE TABLE tenantry.brand_assets (
    sha256        text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
    content_type  text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp', 'image/x-icon')),
    bytes         bytea NOT NULL,
    size          integer NOT NULL CHECK (size = octet_length(bytes) AND size BETWEEN 1 AND 524288),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenantry.brands (
    tenant_id   uuid PRIMARY KEY REFERENCES tenantry.tenants (id),
    theme       jsonb NOT NULL CHECK (jsonb_typeof(theme) = 'object'),
    logo        text REFERENCES tenantry.brand_assets (sha256),
    favicon     text REFERENCES tenantry.brand_assets (sha256),
    -- grows by one with every change (a reset too), so (tenant_id, version) names one theme
    version     integer NOT NULL CHECK (version > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);
CREATE INDEX brands_logo ON tenantry.brands (logo) WHERE logo IS NOT NULL;
CREATE INDEX brands_favicon ON tenantry.brands (favicon) WHERE favicon IS NOT NULL;

REVOKE ALL ON tenantry.brand_assets, tenantry.brands FROM PUBLIC;
