-- Agents (Neutron's `agent` extension): each host that runs a data plane reports itself here,
-- with a heartbeat. Nothing the switch forwards depends on this table: no revision log.
CREATE TABLE agents (
    id TEXT PRIMARY KEY NOT NULL,
    agent_type TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    host TEXT NOT NULL,
    topic TEXT NOT NULL,
    admin_state_up INTEGER NOT NULL DEFAULT 1,
    description TEXT,
    configurations TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    UNIQUE (agent_type, host)
);
