-- A port's status is each host's word about it: the host it is bound to holds its device, but
-- an unbound port may be opened wherever a device of its name appears, and a port that moves
-- is reported by both hosts for a moment. One row per (port, host); readers take the bound
-- host's row (an unbound port's best one). What hosts report is re-sent in full at each
-- heartbeat: nothing is carried over.
DROP TABLE port_status;
CREATE TABLE port_status (
    port_id  TEXT NOT NULL,
    host     TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DOWN', 'ERROR')),
    reason   TEXT,
    PRIMARY KEY (port_id, host)
);
CREATE INDEX port_status_by_host ON port_status (host);

-- An interface is registered on a host (empty: any host, as with one host): only that host's
-- data plane opens its device, and a Quantum port it is plugged into is bound there. A device
-- name is unique per host, not across hosts (the schema keeps (device, host) unique; the
-- service refuses a name on one host that is registered on any host, and the other way round).
-- Rebuilt (SQLite cannot drop a column's UNIQUE), with its revision-log triggers as 0004.
CREATE TABLE interfaces_new (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    tenant_id TEXT    NOT NULL,
    device    TEXT    NOT NULL,
    host      TEXT    NOT NULL DEFAULT ''
);
INSERT INTO interfaces_new (seq, id, tenant_id, device)
    SELECT seq, id, tenant_id, device FROM interfaces;
-- The ids handed out so far stay handed out (AUTOINCREMENT's high-water mark moves with it).
DELETE FROM sqlite_sequence WHERE name = 'interfaces_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'interfaces_new', seq FROM sqlite_sequence WHERE name = 'interfaces';
DROP TABLE interfaces;
ALTER TABLE interfaces_new RENAME TO interfaces;
CREATE INDEX interfaces_by_tenant ON interfaces (tenant_id, seq);
CREATE UNIQUE INDEX interfaces_by_device ON interfaces (device, host);
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

-- A port that moves to another host (`binding:host_id`) leaves the old host's data plane and
-- reaches the new one's.
CREATE TRIGGER log_port_host AFTER UPDATE OF host_id ON ports
    WHEN OLD.host_id IS NOT NEW.host_id BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.id FROM revision;
END;
