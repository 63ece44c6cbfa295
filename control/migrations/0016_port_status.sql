-- What each host's data plane reports about the ports it forwards (agents, or a server's own
-- data plane on a shared store): ACTIVE, DOWN or ERROR (with its reason), as of the store
-- revision it had applied. A status is the host's word, not desired state: no revision log.
CREATE TABLE port_status (
    port_id  TEXT PRIMARY KEY NOT NULL,
    host     TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DOWN', 'ERROR')),
    reason   TEXT,
    revision INTEGER NOT NULL
);
CREATE INDEX port_status_by_host ON port_status (host);
