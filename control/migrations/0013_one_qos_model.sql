-- qswitch control store, schema version 13: one QoS model. The Quantum v1.1 qos extension
-- becomes a view of Neutron QoS policies:
--
-- * rule values are kept in bits and packets (rate in bit/s or packet/s, burst in bits or
--   packets), so that a Quantum limit keeps its exact value; the Neutron face shows kbps and
--   kpps;
-- * a limit set through the Quantum extension is a policy of its own port (`port_id`), set on
--   the port, holding the limit as egress rules; it goes with the port, unless something else
--   has been given it meanwhile;
-- * each per-port limit of schema 3 becomes such a policy, with the ingress rules of the policy
--   the port took until now (its own, else its network's), so that nothing it enforced changes.

UPDATE qos_rules SET rate = rate * 1000, burst = burst * 1000;

ALTER TABLE qos_policies ADD COLUMN port_id TEXT;
CREATE UNIQUE INDEX qos_policies_by_port ON qos_policies (port_id) WHERE port_id IS NOT NULL;

-- New ids are uuid4s of random bits, made per row.
INSERT INTO qos_policies (id, tenant_id, name, description, created_at, updated_at,
                          revision_number, port_id)
    SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))), COALESCE(p.tenant_id, n.tenant_id), 'port-' || q.port_id,
           'The limit of port ' || q.port_id || ' set through the Quantum v1.1 qos extension',
           strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 1,
           q.port_id
    FROM port_qos q JOIN ports p ON p.id = q.port_id JOIN networks n ON n.id = p.network_id;

INSERT INTO qos_rules (id, policy_id, type, direction, rate, burst)
    SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))), pol.id, 'bandwidth_limit', 'egress', q.rate_bps,
           q.burst_bits
    FROM port_qos q JOIN qos_policies pol ON pol.port_id = q.port_id WHERE q.rate_bps > 0;
INSERT INTO qos_rules (id, policy_id, type, direction, rate, burst)
    SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))), pol.id, 'packet_rate_limit', 'egress', q.rate_pps,
           q.burst_packets
    FROM port_qos q JOIN qos_policies pol ON pol.port_id = q.port_id WHERE q.rate_pps > 0;
INSERT INTO qos_rules (id, policy_id, type, direction, rate, burst)
    SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))), pol.id, r.type, r.direction, r.rate, r.burst
    FROM port_qos q
    JOIN qos_policies pol ON pol.port_id = q.port_id
    JOIN ports p ON p.id = q.port_id
    JOIN networks n ON n.id = p.network_id
    JOIN qos_rules r ON r.policy_id = COALESCE(p.qos_policy_id,
        CASE WHEN substr(p.device_owner, 1, 8) <> 'network:' THEN n.qos_policy_id END)
    WHERE r.direction = 'ingress';

UPDATE ports SET qos_policy_id = (SELECT id FROM qos_policies WHERE port_id = ports.id),
                 revision_number = revision_number + 1,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    WHERE id IN (SELECT port_id FROM port_qos);

DROP TABLE port_qos;

-- A port's own policy goes with it, unless a network or another port has been given it.
CREATE TRIGGER drop_port_qos_policy AFTER DELETE ON ports BEGIN
    DELETE FROM qos_policies WHERE port_id = OLD.id
        AND NOT EXISTS (SELECT 1 FROM ports WHERE qos_policy_id = qos_policies.id)
        AND NOT EXISTS (SELECT 1 FROM networks WHERE qos_policy_id = qos_policies.id);
    UPDATE qos_policies SET port_id = NULL WHERE port_id = OLD.id;
END;
