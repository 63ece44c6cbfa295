-- Runs right after 0006_security_groups.sql, in its transaction, whenever that migration runs
-- (see `BACKFILLS` in `control/src/store/sqlite.rs`; on a new database it finds nothing to do):
-- every v2.0 port with port security on gets its project's default security group, made with
-- Neutron's rules (any egress; ingress from the group's own members) as the service makes it
-- (`service::security::insert_group`), as a port created since gets it. Without a group such a
-- port's traffic would be refused whole (port security on and no group is Neutron's "drop
-- everything"); with it, it is filtered as every later port is. Quantum ports and ports with
-- port security off keep no groups. A port given a group counts it as a change: its revision
-- and `updated_at` move, as on an update through the API.

-- One new group per project, in the order of each project's first port.
CREATE TEMP TABLE backfill_groups AS
    SELECT tenant_id,
           lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
           substr(lower(hex(randomblob(2))), 2) || '-' ||
           substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
           '-' || lower(hex(randomblob(6))) AS id,
           strftime('%Y-%m-%dT%H:%M:%SZ', 'now') AS at
    FROM (SELECT COALESCE(p.tenant_id, n.tenant_id) AS tenant_id, MIN(p.seq) AS first
          FROM ports p JOIN networks n ON n.id = p.network_id
          WHERE p.port_security_enabled
            AND NOT EXISTS (SELECT 1 FROM port_security_groups g WHERE g.port_id = p.id)
            AND NOT EXISTS (SELECT 1 FROM security_groups s
                            WHERE s.tenant_id = COALESCE(p.tenant_id, n.tenant_id)
                              AND s.is_default)
          GROUP BY 1
          ORDER BY first);

INSERT INTO security_groups (id, tenant_id, name, description, stateful, is_default,
                             created_at, updated_at, revision_number)
    SELECT id, tenant_id, 'default', 'Default security group', 1, 1, at, at, 0
    FROM backfill_groups ORDER BY rowid;

-- The rules in the service's order: egress then ingress, IPv4 then IPv6.
INSERT INTO security_group_rules (id, security_group_id, tenant_id, direction, ethertype,
                                  remote_group_id, created_at, updated_at, revision_number)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
           substr(lower(hex(randomblob(2))), 2) || '-' ||
           substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||
           '-' || lower(hex(randomblob(6))),
           g.id, g.tenant_id, r.direction, r.ethertype,
           CASE r.direction WHEN 'ingress' THEN g.id END, g.at, g.at, 0
    FROM backfill_groups g,
         (SELECT 1 AS ord, 'egress' AS direction, 'IPv4' AS ethertype
          UNION ALL SELECT 2, 'ingress', 'IPv4'
          UNION ALL SELECT 3, 'egress', 'IPv6'
          UNION ALL SELECT 4, 'ingress', 'IPv6') r
    ORDER BY g.rowid, r.ord;

CREATE TEMP TABLE backfill_ports AS
    SELECT p.id AS port_id, s.id AS group_id
    FROM ports p JOIN networks n ON n.id = p.network_id
         JOIN security_groups s ON s.tenant_id = COALESCE(p.tenant_id, n.tenant_id)
                               AND s.is_default
    WHERE p.port_security_enabled
      AND NOT EXISTS (SELECT 1 FROM port_security_groups g WHERE g.port_id = p.id)
    ORDER BY p.seq;

INSERT INTO port_security_groups (port_id, security_group_id)
    SELECT port_id, group_id FROM backfill_ports ORDER BY rowid;

UPDATE ports SET revision_number = revision_number + 1,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    WHERE id IN (SELECT port_id FROM backfill_ports);

DROP TABLE backfill_ports;
DROP TABLE backfill_groups;
