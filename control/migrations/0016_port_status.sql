-- What each host's data plane reports (agents, or a server's own data plane on a shared store):
-- the store revision it has applied, and the state of each port it holds: ACTIVE, DOWN or ERROR
-- (with its reason). A host's word, not desired state: no revision log.
CREATE TABLE host_status (
    host     TEXT PRIMARY KEY NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE port_status (
    port_id  TEXT PRIMARY KEY NOT NULL,
    host     TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DOWN', 'ERROR')),
    reason   TEXT
);
CREATE INDEX port_status_by_host ON port_status (host);
