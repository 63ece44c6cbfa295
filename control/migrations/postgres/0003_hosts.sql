-- As SQLite's migration 17: one status row per (port, host); interfaces registered on a host.
DROP TABLE port_status;
CREATE TABLE port_status (
    port_id  TEXT COLLATE "C" NOT NULL,
    host     TEXT COLLATE "C" NOT NULL,
    status   TEXT COLLATE "C" NOT NULL CHECK (status IN ('ACTIVE', 'DOWN', 'ERROR')),
    reason   TEXT COLLATE "C",
    PRIMARY KEY (port_id, host)
);
CREATE INDEX port_status_by_host ON port_status (host);

ALTER TABLE interfaces ADD COLUMN host TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE interfaces DROP CONSTRAINT interfaces_device_key;
CREATE UNIQUE INDEX interfaces_by_device ON interfaces (device, host);

-- A port that moves to another host (`binding:host_id`) leaves the old host's data plane and
-- reaches the new one's: as 0001's, with the host.
CREATE OR REPLACE FUNCTION qs_ports() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM qs_log('port', NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM qs_log('port', OLD.id);
        -- A port's own QoS policy (a Quantum limit) goes with it, unless something else uses it.
        DELETE FROM qos_policies q WHERE q.port_id = OLD.id
            AND NOT EXISTS (SELECT 1 FROM ports WHERE qos_policy_id = q.id)
            AND NOT EXISTS (SELECT 1 FROM networks WHERE qos_policy_id = q.id);
        UPDATE qos_policies SET port_id = NULL WHERE port_id = OLD.id;
    ELSIF OLD.state IS DISTINCT FROM NEW.state
          OR OLD.interface_id IS DISTINCT FROM NEW.interface_id
          OR OLD.mac_address IS DISTINCT FROM NEW.mac_address
          OR OLD.port_security_enabled IS DISTINCT FROM NEW.port_security_enabled
          OR OLD.bind_tap IS DISTINCT FROM NEW.bind_tap
          OR OLD.network_id IS DISTINCT FROM NEW.network_id
          OR OLD.device_owner IS DISTINCT FROM NEW.device_owner
          OR OLD.qos_policy_id IS DISTINCT FROM NEW.qos_policy_id
          OR OLD.host_id IS DISTINCT FROM NEW.host_id THEN
        PERFORM qs_log('port', NEW.id);
    END IF;
    RETURN NULL;
END $$;

-- Followers (API servers with a data plane, host agents) LISTEN on qswitch_revision: each closed
-- revision wakes them when its transaction commits; the revision number tells them what they
-- missed. Databases created from 0001 as first released lack it; those created from its later
-- form have it: replaced either way.
CREATE OR REPLACE FUNCTION qs_revision_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qswitch_revision', NEW.revision::text);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS notify_revision ON revision;
CREATE TRIGGER notify_revision AFTER UPDATE ON revision
    FOR EACH ROW EXECUTE FUNCTION qs_revision_closed();
