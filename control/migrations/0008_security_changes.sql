-- qswitch control store, schema version 8: security groups reach the switch, so the revision
-- log records what changes their effect: a group's rules (or statefulness) touch every port in
-- the group ('security_group'); a group's membership and its members' addresses touch the
-- group's address set ('group_members'), which the rules naming it as their remote group match.
-- A port joining or leaving a group is also a change of the port (its rules).

-- The log's kinds are checked: the table is rebuilt with the two new ones. The triggers that
-- write to it name it by name, so the rename must not rewrite them (legacy rename).
PRAGMA legacy_alter_table = ON;
CREATE TABLE changes_new (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    revision INTEGER NOT NULL,
    kind     TEXT    NOT NULL
             CHECK (kind IN ('network', 'network_ports', 'port', 'interface', 'device',
                             'security_group', 'group_members')),
    id       TEXT    NOT NULL
);
INSERT INTO changes_new (seq, revision, kind, id) SELECT seq, revision, kind, id FROM changes;
DROP TABLE changes;
ALTER TABLE changes_new RENAME TO changes;
CREATE INDEX changes_by_revision ON changes (revision);
PRAGMA legacy_alter_table = OFF;

CREATE TRIGGER log_sg_rule_insert AFTER INSERT ON security_group_rules BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'security_group', NEW.security_group_id FROM revision;
END;
CREATE TRIGGER log_sg_rule_delete AFTER DELETE ON security_group_rules BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'security_group', OLD.security_group_id FROM revision;
END;
CREATE TRIGGER log_sg_stateful AFTER UPDATE OF stateful ON security_groups
    WHEN OLD.stateful IS NOT NEW.stateful BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'security_group', NEW.id FROM revision;
END;

CREATE TRIGGER log_sg_insert AFTER INSERT ON security_groups BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'group_members', NEW.id FROM revision;
END;
CREATE TRIGGER log_sg_delete AFTER DELETE ON security_groups BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'group_members', OLD.id FROM revision;
END;

CREATE TRIGGER log_port_sg_insert AFTER INSERT ON port_security_groups BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.port_id FROM revision;
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'group_members', NEW.security_group_id FROM revision;
END;
CREATE TRIGGER log_port_sg_delete AFTER DELETE ON port_security_groups BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', OLD.port_id FROM revision;
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'group_members', OLD.security_group_id FROM revision;
END;

CREATE TRIGGER log_ip_members_insert AFTER INSERT ON ip_allocations BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'group_members', g.security_group_id
        FROM revision r, port_security_groups g WHERE g.port_id = NEW.port_id;
END;
CREATE TRIGGER log_ip_members_delete AFTER DELETE ON ip_allocations BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'group_members', g.security_group_id
        FROM revision r, port_security_groups g WHERE g.port_id = OLD.port_id;
END;
CREATE TRIGGER log_pair_members_insert AFTER INSERT ON port_address_pairs BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'group_members', g.security_group_id
        FROM revision r, port_security_groups g WHERE g.port_id = NEW.port_id;
END;
CREATE TRIGGER log_pair_members_delete AFTER DELETE ON port_address_pairs BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'group_members', g.security_group_id
        FROM revision r, port_security_groups g WHERE g.port_id = OLD.port_id;
END;
