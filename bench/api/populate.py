#!/usr/bin/env python3
"""Fills a qswitch database with many ports on one network, for the pagination benchmark.

  populate.py DB TENANT NETWORK_ID COUNT

Creating 100 000 ports through the API takes long because every write re-derives the whole
desired state; the rows are inserted here the way the store writes a Quantum port (id, network,
state DOWN, a MAC unique in the network), in one transaction, next to a running daemon (SQLite
WAL allows it). The network must exist (create it through the API first).
"""
import sqlite3
import sys
import uuid


def main():
    db, tenant, net, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = sqlite3.connect(db, timeout=30)
    if not c.execute("SELECT 1 FROM networks WHERE id = ? AND tenant_id = ?", (net, tenant)).fetchone():
        sys.exit(f"no network {net} of tenant {tenant} in {db}")
    with c:
        start = c.execute("SELECT COALESCE(MAX(seq), 0) FROM ports").fetchone()[0]
        rows = []
        for i in range(count):
            n = start + i + 1
            mac = "fa:16:3e:%02x:%02x:%02x" % ((n >> 16) & 255, (n >> 8) & 255, n & 255)
            rows.append((str(uuid.uuid4()), net, mac))
        c.executemany(
            "INSERT INTO ports (id, network_id, state, mac_address) VALUES (?, ?, 'DOWN', ?)", rows
        )
    print(f"{count} ports added to network {net}")


if __name__ == "__main__":
    main()
