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

-- Followers (API servers with a data plane, host agents) LISTEN on qswitch_revision: each closed
-- revision wakes them when its transaction commits; the revision number tells them what they
-- missed. (Databases created before this migration may have it from their first: replaced.)
CREATE OR REPLACE FUNCTION qs_revision_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qswitch_revision', NEW.revision::text);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS notify_revision ON revision;
CREATE TRIGGER notify_revision AFTER UPDATE ON revision
    FOR EACH ROW EXECUTE FUNCTION qs_revision_closed();
