-- Neutron v2.0 security groups: groups per project (one `default` each), their rules, and the
-- groups of each port.
CREATE TABLE security_groups (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    tenant_id       TEXT    NOT NULL,
    name            TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT '',
    stateful        INTEGER NOT NULL DEFAULT 1,
    is_default      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL DEFAULT '',
    updated_at      TEXT    NOT NULL DEFAULT '',
    revision_number INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX security_groups_by_tenant ON security_groups (tenant_id, seq);
-- One default group per project, also under concurrent first uses.
CREATE UNIQUE INDEX security_groups_default ON security_groups (tenant_id) WHERE is_default;

CREATE TABLE security_group_rules (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    security_group_id TEXT    NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    tenant_id         TEXT    NOT NULL,
    direction         TEXT    NOT NULL CHECK (direction IN ('ingress', 'egress')),
    ethertype         TEXT    NOT NULL CHECK (ethertype IN ('IPv4', 'IPv6')),
    -- As given: a name or a number; NULL for any protocol.
    protocol          TEXT,
    port_range_min    INTEGER,
    port_range_max    INTEGER,
    remote_ip_prefix  TEXT,
    -- A rule whose remote group is deleted goes with it, as Neutron's.
    remote_group_id   TEXT    REFERENCES security_groups (id) ON DELETE CASCADE,
    description       TEXT    NOT NULL DEFAULT '',
    created_at        TEXT    NOT NULL DEFAULT '',
    updated_at        TEXT    NOT NULL DEFAULT '',
    revision_number   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX security_group_rules_by_group ON security_group_rules (security_group_id, seq);
CREATE INDEX security_group_rules_by_remote ON security_group_rules (remote_group_id);
CREATE INDEX security_group_rules_by_tenant ON security_group_rules (tenant_id);

CREATE TABLE port_security_groups (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    port_id           TEXT    NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    security_group_id TEXT    NOT NULL REFERENCES security_groups (id),
    UNIQUE (port_id, security_group_id)
);
CREATE INDEX port_security_groups_by_group ON port_security_groups (security_group_id);
