-- As SQLite's migration 16: what each host's data plane reports.
CREATE TABLE host_status (
    host     TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL
);
CREATE TABLE port_status (
    port_id  TEXT COLLATE "C" PRIMARY KEY,
    host     TEXT COLLATE "C" NOT NULL,
    status   TEXT COLLATE "C" NOT NULL CHECK (status IN ('ACTIVE', 'DOWN', 'ERROR')),
    reason   TEXT COLLATE "C"
);
CREATE INDEX port_status_by_host ON port_status (host);
