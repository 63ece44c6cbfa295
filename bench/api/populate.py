#!/usr/bin/env python3
"""Fills a qswitch database with many ports on one network, for the pagination benchmark.

  populate.py DB TENANT NETWORK_ID COUNT

Through the API, 100 000 ports take about a minute (`qswitch-apibench --scale`); here the rows
are inserted the way the store writes a Quantum port (id, network, its tenant, state DOWN, a MAC
unique in the network, timestamps), in one transaction that also closes its revision in the
store's revision log, next to a running daemon (SQLite WAL allows it). Unplugged Quantum ports
forward nothing, so the daemon has nothing to apply. The network must exist (create it through
the API first).
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
            "INSERT INTO ports (id, network_id, state, mac_address, tenant_id, created_at, "
            "updated_at) VALUES (?, ?, 'DOWN', ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), "
            "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            [r + (tenant,) for r in rows],
        )
        # The triggers logged the ports under the next revision: take it, as a write does.
        c.execute("UPDATE revision SET revision = revision + 1")
    print(f"{count} ports added to network {net}")


if __name__ == "__main__":
    main()
