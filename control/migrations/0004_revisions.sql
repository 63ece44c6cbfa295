-- qswitch control store, schema version 4: the revision log.
--
-- Every committed write that changes something the data plane (or a host's
-- agent) may care about takes the next revision, and `changes` records, under
-- that revision and in the same transaction, what it touched: a network, a
-- port, a registered interface or a host device. Triggers keep the log, so no
-- write path can forget it. A write's rows carry `revision.revision + 1` (the
-- write lock is held, so no other writer can take that number); the writer
-- then bumps `revision` before it commits (`close_revision` in the store).
-- Followers read `changes` in revision order and re-derive what was touched;
-- one that finds a gap (pruned history) resyncs in full.
--
-- Network updates are logged only when a forwarding attribute changes (VLAN,
-- owner, admin state), so that renaming a network with many ports does not
-- make followers re-derive its ports; a change of admin state is logged as
-- 'network_ports' as well, since every port of the network follows it.

CREATE TABLE revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO revision (id, revision) VALUES (1, 0);

CREATE TABLE changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    revision INTEGER NOT NULL,
    kind     TEXT    NOT NULL
             CHECK (kind IN ('network', 'network_ports', 'port', 'interface', 'device')),
    id       TEXT    NOT NULL
);
CREATE INDEX changes_by_revision ON changes (revision);

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
      OR OLD.admin_state_up IS NOT NEW.admin_state_up BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network', NEW.id FROM revision;
END;
CREATE TRIGGER log_network_admin AFTER UPDATE OF admin_state_up ON networks
    WHEN OLD.admin_state_up IS NOT NEW.admin_state_up BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network_ports', NEW.id FROM revision;
END;

CREATE TRIGGER log_port_insert AFTER INSERT ON ports BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.id FROM revision;
END;
CREATE TRIGGER log_port_delete AFTER DELETE ON ports BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', OLD.id FROM revision;
END;
CREATE TRIGGER log_port_update AFTER UPDATE ON ports
    WHEN OLD.state IS NOT NEW.state OR OLD.interface_id IS NOT NEW.interface_id
      OR OLD.mac_address IS NOT NEW.mac_address
      OR OLD.port_security_enabled IS NOT NEW.port_security_enabled
      OR OLD.bind_tap IS NOT NEW.bind_tap OR OLD.network_id IS NOT NEW.network_id BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.id FROM revision;
END;

CREATE TRIGGER log_pair_insert AFTER INSERT ON port_address_pairs BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.port_id FROM revision;
END;
CREATE TRIGGER log_pair_delete AFTER DELETE ON port_address_pairs BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', OLD.port_id FROM revision;
END;
CREATE TRIGGER log_ip_insert AFTER INSERT ON ip_allocations BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.port_id FROM revision;
END;
CREATE TRIGGER log_ip_delete AFTER DELETE ON ip_allocations BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', OLD.port_id FROM revision;
END;
CREATE TRIGGER log_qos_insert AFTER INSERT ON port_qos BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.port_id FROM revision;
END;
CREATE TRIGGER log_qos_update AFTER UPDATE ON port_qos BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.port_id FROM revision;
END;
CREATE TRIGGER log_qos_delete AFTER DELETE ON port_qos BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', OLD.port_id FROM revision;
END;

CREATE TRIGGER log_interface_insert AFTER INSERT ON interfaces BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'interface', NEW.id FROM revision;
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'device', NEW.device FROM revision;
END;
CREATE TRIGGER log_interface_update AFTER UPDATE ON interfaces BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'interface', NEW.id FROM revision;
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'device', OLD.device FROM revision;
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'device', NEW.device FROM revision;
END;
CREATE TRIGGER log_interface_delete AFTER DELETE ON interfaces BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'interface', OLD.id FROM revision;
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'device', OLD.device FROM revision;
END;
