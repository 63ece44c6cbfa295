-- qswitch control store, schema version 10: provider networks. A network is a VLAN of a
-- physical network, the untagged (flat) segment of one, or local (no physical network). The
-- segment is unique per physical network: a VLAN id may be used again on another physical
-- network, and each physical network has at most one flat network.
--
-- The table is rebuilt (its `vlan` column was unique across everything and never 0). The
-- store turns foreign keys off around migrations, so dropping the old table deletes no port or
-- subnet; the triggers that name it are made again below, and the legacy rename keeps every
-- other reference to `networks` as it is.
PRAGMA legacy_alter_table = ON;
CREATE TABLE networks_new (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    tenant_id        TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    vlan             INTEGER NOT NULL CHECK (vlan BETWEEN 0 AND 4094),
    admin_state_up   INTEGER NOT NULL DEFAULT 1,
    shared           INTEGER NOT NULL DEFAULT 0,
    mtu              INTEGER NOT NULL DEFAULT 1500,
    description      TEXT    NOT NULL DEFAULT '',
    port_security_enabled INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT    NOT NULL DEFAULT '',
    updated_at       TEXT    NOT NULL DEFAULT '',
    revision_number  INTEGER NOT NULL DEFAULT 1,
    router_external  INTEGER NOT NULL DEFAULT 0,
    network_type     TEXT    NOT NULL DEFAULT 'vlan'
                     CHECK (network_type IN ('vlan', 'flat', 'local')),
    physical_network TEXT,
    CHECK ((network_type = 'vlan' AND vlan BETWEEN 1 AND 4094 AND physical_network IS NOT NULL)
        OR (network_type = 'flat' AND vlan = 0 AND physical_network IS NOT NULL)
        OR (network_type = 'local' AND vlan = 0 AND physical_network IS NULL))
);
-- Networks made before provider networks are VLANs of the default physical network.
INSERT INTO networks_new (seq, id, tenant_id, name, vlan, admin_state_up, shared, mtu,
                          description, port_security_enabled, created_at, updated_at,
                          revision_number, router_external, network_type, physical_network)
    SELECT seq, id, tenant_id, name, vlan, admin_state_up, shared, mtu, description,
           port_security_enabled, created_at, updated_at, revision_number, router_external,
           'vlan', 'physnet1'
    FROM networks;
-- Ids of deleted networks' rows are not handed out again: the counter goes with the rows.
UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'networks')
    WHERE name = 'networks_new' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'networks');
DROP TABLE networks;
ALTER TABLE networks_new RENAME TO networks;
PRAGMA legacy_alter_table = OFF;
CREATE INDEX networks_by_tenant ON networks (tenant_id, seq);
CREATE UNIQUE INDEX networks_by_segment ON networks (physical_network, vlan)
    WHERE physical_network IS NOT NULL;

CREATE TRIGGER log_network_insert AFTER INSERT ON networks BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network', NEW.id FROM revision;
END;
CREATE TRIGGER log_network_delete AFTER DELETE ON networks BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network', OLD.id FROM revision;
END;
CREATE TRIGGER log_network_update AFTER UPDATE ON networks
    WHEN OLD.vlan IS NOT NEW.vlan OR OLD.tenant_id IS NOT NEW.tenant_id
      OR OLD.admin_state_up IS NOT NEW.admin_state_up
      OR OLD.network_type IS NOT NEW.network_type
      OR OLD.physical_network IS NOT NEW.physical_network BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network', NEW.id FROM revision;
END;
CREATE TRIGGER log_network_admin AFTER UPDATE OF admin_state_up ON networks
    WHEN OLD.admin_state_up IS NOT NEW.admin_state_up BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network_ports', NEW.id FROM revision;
END;
CREATE TRIGGER log_network_mtu AFTER UPDATE OF mtu ON networks
    WHEN OLD.mtu IS NOT NEW.mtu BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network_ports', NEW.id FROM revision;
END;
