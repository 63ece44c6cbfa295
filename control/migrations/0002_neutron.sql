-- qswitch control store, schema version 2: the Neutron v2.0 attributes of
-- networks and ports, subnets and IP allocations.
--
-- Quantum rows keep working: every new column has a default, and ports made
-- before this version get a MAC derived from their unique `seq`.

ALTER TABLE networks ADD COLUMN admin_state_up INTEGER NOT NULL DEFAULT 1;
ALTER TABLE networks ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE networks ADD COLUMN mtu INTEGER NOT NULL DEFAULT 1500;
ALTER TABLE networks ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN port_security_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE networks ADD COLUMN created_at TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN revision_number INTEGER NOT NULL DEFAULT 1;

-- A port's own project (NULL: its network's tenant, as for Quantum ports).
ALTER TABLE ports ADD COLUMN tenant_id TEXT;
ALTER TABLE ports ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE ports ADD COLUMN mac_address TEXT;
ALTER TABLE ports ADD COLUMN device_id TEXT NOT NULL DEFAULT '';
ALTER TABLE ports ADD COLUMN device_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE ports ADD COLUMN description TEXT NOT NULL DEFAULT '';
-- Quantum ports carry no anti-spoofing (their clients never learn the MAC);
-- v2.0 creates set it from the request or the network (default on).
ALTER TABLE ports ADD COLUMN port_security_enabled INTEGER NOT NULL DEFAULT 0;
-- 1: the port is bound to host device `tap` + the first 11 characters of its
-- id (the Neutron/Nova convention) when no attachment is plugged; set for
-- ports created through v2.0.
ALTER TABLE ports ADD COLUMN bind_tap INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ports ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
ALTER TABLE ports ADD COLUMN created_at TEXT NOT NULL DEFAULT '';
ALTER TABLE ports ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
ALTER TABLE ports ADD COLUMN revision_number INTEGER NOT NULL DEFAULT 1;

UPDATE ports SET mac_address = printf('fa:16:3e:%02x:%02x:%02x',
    (seq >> 16) & 255, (seq >> 8) & 255, seq & 255) WHERE mac_address IS NULL;
-- A MAC is unique within its network.
CREATE UNIQUE INDEX ports_mac_per_network ON ports (network_id, mac_address);

-- Allowed address pairs of a port, in the order given.
CREATE TABLE port_address_pairs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    port_id     TEXT    NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    mac_address TEXT    NOT NULL,
    ip_address  TEXT    NOT NULL
);
CREATE INDEX port_address_pairs_by_port ON port_address_pairs (port_id, seq);

CREATE TABLE subnets (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    network_id      TEXT    NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    tenant_id       TEXT    NOT NULL,
    name            TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT '',
    ip_version      INTEGER NOT NULL CHECK (ip_version IN (4, 6)),
    -- Normalised (host bits zero), e.g. 198.18.0.0/24.
    cidr            TEXT    NOT NULL,
    gateway_ip      TEXT,
    enable_dhcp     INTEGER NOT NULL DEFAULT 1,
    -- Lists, one item a line: "first-last" pools, addresses, "destination,nexthop" routes.
    allocation_pools TEXT   NOT NULL DEFAULT '',
    dns_nameservers TEXT    NOT NULL DEFAULT '',
    host_routes     TEXT    NOT NULL DEFAULT '',
    ipv6_ra_mode    TEXT,
    ipv6_address_mode TEXT,
    created_at      TEXT    NOT NULL DEFAULT '',
    updated_at      TEXT    NOT NULL DEFAULT '',
    revision_number INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX subnets_by_network ON subnets (network_id, seq);

-- An address held by a port; unique within its subnet.
CREATE TABLE ip_allocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    port_id    TEXT    NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    subnet_id  TEXT    NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    ip_address TEXT    NOT NULL,
    UNIQUE (subnet_id, ip_address)
);
CREATE INDEX ip_allocations_by_port ON ip_allocations (port_id, seq);
