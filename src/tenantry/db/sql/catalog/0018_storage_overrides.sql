-- tenantry catalog 0018: a tenant's own storage_mb (tenantry.tenant_limits, 0015) counts over
-- its plan's in the over-quota view (0016), as every other limit's override does; a key set
-- to null there lifts the quota for that tenant.
CREATE OR REPLACE VIEW tenantry.storage_over_quota AS
SELECT s.tenant_id, s.bytes, (q.quota::text)::numeric AS storage_mb
  FROM tenantry.storage s
  JOIN tenantry.tenants t ON t.id = s.tenant_id
  JOIN tenantry.plans p ON p.name = t.plan
  LEFT JOIN tenantry.tenant_limits tl ON tl.tenant_id = t.id
 CROSS JOIN LATERAL (
       SELECT CASE WHEN tl.limits ? 'storage_mb' THEN tl.limits -> 'storage_mb' ELSE p.limits -> 'storage_mb' END
       ) AS q (quota)
 WHERE jsonb_typeof(q.quota) = 'number'
   AND s.bytes > (CASE WHEN jsonb_typeof(q.quota) = 'number' THEN (q.quota::text)::numeric END) * 1048576;
