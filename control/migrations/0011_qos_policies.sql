-- qswitch control store, schema version 11: Neutron QoS policies. A policy holds at most one
-- bandwidth limit rule and one packet rate limit rule per direction ('egress': what the VM
-- sends; 'ingress': what it receives). A port applies its own policy, else its network's.
CREATE TABLE qos_policies (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    tenant_id       TEXT    NOT NULL,
    name            TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT '',
    shared          INTEGER NOT NULL DEFAULT 0,
    is_default      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL DEFAULT '',
    updated_at      TEXT    NOT NULL DEFAULT '',
    revision_number INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX qos_policies_by_tenant ON qos_policies (tenant_id, seq);
-- One default policy per project.
CREATE UNIQUE INDEX qos_policies_default ON qos_policies (tenant_id) WHERE is_default;

CREATE TABLE qos_rules (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    policy_id  TEXT    NOT NULL REFERENCES qos_policies (id) ON DELETE CASCADE,
    type       TEXT    NOT NULL CHECK (type IN ('bandwidth_limit', 'packet_rate_limit')),
    direction  TEXT    NOT NULL CHECK (direction IN ('egress', 'ingress')),
    -- kbps and kbit for bandwidth limits, kpps and kpackets for packet rate limits.
    rate       INTEGER NOT NULL CHECK (rate >= 0),
    burst      INTEGER NOT NULL CHECK (burst >= 0),
    UNIQUE (policy_id, type, direction)
);

ALTER TABLE ports ADD COLUMN qos_policy_id TEXT REFERENCES qos_policies (id);
ALTER TABLE networks ADD COLUMN qos_policy_id TEXT REFERENCES qos_policies (id);
CREATE INDEX ports_by_qos_policy ON ports (qos_policy_id) WHERE qos_policy_id IS NOT NULL;
CREATE INDEX networks_by_qos_policy ON networks (qos_policy_id) WHERE qos_policy_id IS NOT NULL;

-- The revision log: a rule change touches every port the policy applies to (its own, and those
-- of its networks that have none); a port's or a network's policy changing touches the port,
-- or the network's ports.
CREATE TRIGGER log_qos_rule_insert AFTER INSERT ON qos_rules BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'port', p.id FROM revision r, ports p
        WHERE p.qos_policy_id = NEW.policy_id;
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'network_ports', n.id FROM revision r, networks n
        WHERE n.qos_policy_id = NEW.policy_id;
END;
CREATE TRIGGER log_qos_rule_update AFTER UPDATE ON qos_rules BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'port', p.id FROM revision r, ports p
        WHERE p.qos_policy_id = NEW.policy_id;
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'network_ports', n.id FROM revision r, networks n
        WHERE n.qos_policy_id = NEW.policy_id;
END;
CREATE TRIGGER log_qos_rule_delete AFTER DELETE ON qos_rules BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'port', p.id FROM revision r, ports p
        WHERE p.qos_policy_id = OLD.policy_id;
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'network_ports', n.id FROM revision r, networks n
        WHERE n.qos_policy_id = OLD.policy_id;
END;
CREATE TRIGGER log_port_qos_policy AFTER UPDATE OF qos_policy_id ON ports
    WHEN OLD.qos_policy_id IS NOT NEW.qos_policy_id BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.id FROM revision;
END;
CREATE TRIGGER log_network_qos_policy AFTER UPDATE OF qos_policy_id ON networks
    WHEN OLD.qos_policy_id IS NOT NEW.qos_policy_id BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network_ports', NEW.id FROM revision;
END;
