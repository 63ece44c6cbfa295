-- qswitch control store, schema version 5: v2.0 port lists page in SQL.
--
-- Every port now carries its project (Quantum ports made before version 2
-- took their network's), so that a project's ports are one index range in
-- creation order; the filters clients send most (device, owner, MAC, name,
-- fixed IP) each have an index; subnets are counted per project for quotas.
-- Every row has real `created_at`/`updated_at` timestamps.

UPDATE ports SET tenant_id = (SELECT tenant_id FROM networks WHERE id = ports.network_id)
    WHERE tenant_id IS NULL;
CREATE INDEX ports_by_tenant ON ports (tenant_id, seq);
CREATE INDEX ports_by_device ON ports (device_id, seq);
CREATE INDEX ports_by_owner ON ports (device_owner, seq);
CREATE INDEX ports_by_mac ON ports (mac_address);
CREATE INDEX ports_by_name ON ports (name, seq);
CREATE INDEX ip_allocations_by_address ON ip_allocations (ip_address);
CREATE INDEX subnets_by_tenant ON subnets (tenant_id);

-- Rows made through Quantum before this version have no timestamps: they take the migration's.
UPDATE networks SET created_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE created_at = '';
UPDATE networks SET updated_at = created_at WHERE updated_at = '';
UPDATE ports SET created_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE created_at = '';
UPDATE ports SET updated_at = created_at WHERE updated_at = '';
