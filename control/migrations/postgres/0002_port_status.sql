-- As SQLite's migration 16: what each host's data plane reports about the ports it forwards.
CREATE TABLE port_status (
    port_id  TEXT COLLATE "C" PRIMARY KEY,
    host     TEXT COLLATE "C" NOT NULL,
    status   TEXT COLLATE "C" NOT NULL CHECK (status IN ('ACTIVE', 'DOWN', 'ERROR')),
    reason   TEXT COLLATE "C",
    revision BIGINT NOT NULL
);
CREATE INDEX port_status_by_host ON port_status (host);
