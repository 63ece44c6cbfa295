-- qswitch control store, schema version 1.
--
-- `seq` columns give every row a stable creation order (lists are answered in
-- that order); `id` columns carry the public identifiers.

CREATE TABLE networks (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    tenant_id TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    -- The segmentation id: unique while the network exists, released with it.
    vlan      INTEGER NOT NULL UNIQUE CHECK (vlan BETWEEN 1 AND 4094)
);
CREATE INDEX networks_by_tenant ON networks (tenant_id, seq);

-- Host interfaces registered by the hypervisor side, each owned by one tenant.
CREATE TABLE interfaces (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    tenant_id TEXT    NOT NULL,
    device    TEXT    NOT NULL UNIQUE
);
CREATE INDEX interfaces_by_tenant ON interfaces (tenant_id, seq);

CREATE TABLE ports (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    network_id   TEXT    NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    state        TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'DOWN')),
    -- The attachment: a registered interface, plugged into at most one port.
    interface_id TEXT    UNIQUE REFERENCES interfaces (id)
);
CREATE INDEX ports_by_network ON ports (network_id, seq);
