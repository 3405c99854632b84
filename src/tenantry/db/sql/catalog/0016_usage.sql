-- tenantry catalog 0016: storage per tenant (and who is over the plan's storage_mb), and the
-- usage metering table, partitioned by day.
-- Placeholders in braces are identifiers bound by psycopg.sql; literal braces are doubled.

-- the last measurement of each tenant's storage (tn.usage.measure_storage()): bytes of its
-- own schema or database relations, or, for a pooled tenant, its estimated share of the
-- shared tables (method 'estimate': its rows x the table's bytes per row; 'exact': its rows'
-- bytes x the table's bytes per byte of rows)
CREATE TABLE tenantry.storage (
    tenant_id    uuid PRIMARY KEY REFERENCES tenantry.tenants (id) ON DELETE CASCADE,
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    method       text NOT NULL CHECK (method IN ('relations', 'estimate', 'exact')),
    measured_at  timestamptz NOT NULL DEFAULT now()
);

-- the tenants whose last measured storage is over their plan's storage_mb: what the data
-- plane reads to bind their transactions read-only. A view, so that a quota raised (the
-- plan's limits changed) lifts the refusal at once, with no new measurement
CREATE VIEW tenantry.storage_over_quota AS
SELECT s.tenant_id, s.bytes, (p.limits ->> 'storage_mb')::numeric AS storage_mb
  FROM tenantry.storage s
  JOIN tenantry.tenants t ON t.id = s.tenant_id
  JOIN tenantry.plans p ON p.name = t.plan
 WHERE jsonb_typeof(p.limits -> 'storage_mb') = 'number'
   AND s.bytes > (p.limits ->> 'storage_mb')::numeric * 1048576;

CREATE VIEW tenantry_routing.storage_over_quota AS
SELECT tenant_id FROM tenantry.storage_over_quota;

-- usage per tenant and interval, as each process flushes what it counted (one INSERT per
-- process per interval); partitioned by day, partitions made ahead by
-- tenantry.usage_partitions() and dropped by retention
CREATE TABLE tenantry.usage (
    at             timestamptz NOT NULL,
    seconds        double precision NOT NULL CHECK (seconds > 0),
    process        text NOT NULL,
    tenant_id      uuid NOT NULL,
    requests       bigint NOT NULL DEFAULT 0,
    requests_2xx   bigint NOT NULL DEFAULT 0,
    requests_3xx   bigint NOT NULL DEFAULT 0,
    requests_4xx   bigint NOT NULL DEFAULT 0,
    requests_5xx   bigint NOT NULL DEFAULT 0,
    request_ms     double precision NOT NULL DEFAULT 0,
    transactions   bigint NOT NULL DEFAULT 0,
    db_ms          double precision NOT NULL DEFAULT 0,
    rows_written   bigint NOT NULL DEFAULT 0
) PARTITION BY RANGE (at);
CREATE INDEX usage_by_tenant ON tenantry.usage (tenant_id, at);

-- make the daily partitions from `first` for `days` days (idempotent); returns how many it made
CREATE FUNCTION tenantry.usage_partitions(first date, days integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, tenantry AS $$
DECLARE
    made integer := 0;
    d date;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := first + i;
        IF to_regclass(format('tenantry.usage_%s', to_char(d, 'YYYYMMDD'))) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE tenantry.%I PARTITION OF tenantry.usage FOR VALUES FROM (%L) TO (%L)',
                'usage_' || to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;

-- a data-plane process (the reader role, which may write nothing else) flushes its counts
-- through this: one call per interval with a JSON array of rows; only the usage table is
-- reachable, the values are checked by its constraints, and a row for a day without a
-- partition makes that day's partition
CREATE FUNCTION tenantry_routing.record_usage(process text, at timestamptz, seconds double precision, rows jsonb)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, tenantry AS $$
DECLARE
    n integer;
BEGIN
    PERFORM tenantry.usage_partitions((at AT TIME ZONE 'UTC')::date - 1, 3);
    INSERT INTO tenantry.usage (at, seconds, process, tenant_id, requests, requests_2xx, requests_3xx,
                                requests_4xx, requests_5xx, request_ms, transactions, db_ms, rows_written)
    SELECT record_usage.at, record_usage.seconds, left(record_usage.process, 200), r.tenant_id,
           coalesce(r.requests, 0), coalesce(r.requests_2xx, 0), coalesce(r.requests_3xx, 0),
           coalesce(r.requests_4xx, 0), coalesce(r.requests_5xx, 0), coalesce(r.request_ms, 0),
           coalesce(r.transactions, 0), coalesce(r.db_ms, 0), coalesce(r.rows_written, 0)
      FROM jsonb_to_recordset(rows) AS r (tenant_id uuid, requests bigint, requests_2xx bigint, requests_3xx bigint,
           requests_4xx bigint, requests_5xx bigint, request_ms double precision, transactions bigint,
           db_ms double precision, rows_written bigint);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION tenantry_routing.record_usage(text, timestamptz, double precision, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenantry_routing.record_usage(text, timestamptz, double precision, jsonb) TO {reader};

SELECT tenantry.usage_partitions((now() AT TIME ZONE 'UTC')::date - 1, 3);
