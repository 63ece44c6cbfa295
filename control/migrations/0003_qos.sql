-- qswitch control store, schema version 3: the QoS extension's per-port
-- ingress rate limits.
--
-- A port has at most one limit; it goes with the port. Rates of 0 leave that
-- dimension unlimited; bursts of 0 pick 100 ms of the rate.

CREATE TABLE port_qos (
    port_id       TEXT    PRIMARY KEY REFERENCES ports (id) ON DELETE CASCADE,
    rate_bps      INTEGER NOT NULL CHECK (rate_bps >= 0),
    burst_bits    INTEGER NOT NULL CHECK (burst_bits >= 0),
    rate_pps      INTEGER NOT NULL CHECK (rate_pps >= 0),
    burst_packets INTEGER NOT NULL CHECK (burst_packets >= 0)
);
