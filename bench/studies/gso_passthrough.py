#!/usr/bin/env python3
"""How much TCP goodput a switch that keeps the guests' TSO frames whole could get on veth.

A study for the goodput goal with default offloads (docs/BENCHMARKS.md, "TCP goodput"): the
switch's AF_XDP ports copy every MTU-sized segment in and out, while the Linux bridge moves a
guest's 64 KB TSO frame by reference. A packet socket with a virtio-net header
(`PACKET_VNET_HDR`) hands user space a GSO frame whole, with its segment size and partial
checksum, and takes one back the same way: two copies per 64 KB instead of two per 1.5 KB.

Two "VMs" (namespaces qsgs-a and qsgs-b, 198.18.9.1 and .2) are joined through a third
namespace (qsgs-sw) by one of:
- `bridge`: a Linux bridge;
- `relay`: this script as the switch, one process per direction, each reading a packet socket
  with a virtio-net header on one veth and writing what it read, header and all, to the other.
  (Without the header a TSO frame still arrives whole, but cannot leave: above the MTU, the
  send is refused, and nothing connects.)

Then `iperf3 -c -t SECS -P N` from a to b with the guests' default offloads. The relay is
Python, one system call per frame each way: a floor, not a ceiling.

Run as root: `python3 bench/studies/gso_passthrough.py [--time 5] [--streams 1] [--repeat 3]`.
Everything it creates is removed on exit.
"""

import argparse
import json
import socket
import subprocess
import sys
import time

NS_A, NS_B, NS_SW = "qsgs-a", "qsgs-b", "qsgs-sw"
IP_A, IP_B = "198.18.9.1", "198.18.9.2"
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
ETH_P_ALL = 0x0003
# struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
VNET_HDR_LEN = 10


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def cleanup():
    for ns in (NS_A, NS_B, NS_SW):
        sh("ip", "netns", "del", ns, check=False)


def topology(dut):
    cleanup()
    for ns in (NS_A, NS_B, NS_SW):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    for vm, ns, ip in (("a", NS_A, IP_A), ("b", NS_B, IP_B)):
        sh("ip", "link", "add", f"qsgs{vm}0", "netns", ns, "type", "veth", "peer", "name",
           f"qsgs{vm}1", "netns", NS_SW)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", f"qsgs{vm}0")
        sh("ip", "-n", ns, "link", "set", f"qsgs{vm}0", "up")
        sh("ip", "-n", NS_SW, "link", "set", f"qsgs{vm}1", "up")
    if dut == "bridge":
        sh("ip", "-n", NS_SW, "link", "add", "qsgsbr", "type", "bridge")
        for vm in ("a", "b"):
            sh("ip", "-n", NS_SW, "link", "set", f"qsgs{vm}1", "master", "qsgsbr")
        sh("ip", "-n", NS_SW, "link", "set", "qsgsbr", "up")


def relay(src, dst, vnet):
    """Copies every frame received on `src` to `dst` (in the switch namespace), until killed;
    with the virtio-net header if `vnet`."""
    def sock(dev):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        if vnet:
            s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((dev, 0))
        return s

    rx, tx = sock(src), sock(dst)
    buf = bytearray(VNET_HDR_LEN + 65536 + 64)
    view = memoryview(buf)
    while True:
        n = rx.recv_into(buf)
        try:
            tx.send(view[:n])
        except OSError:
            pass


def start_relays(vnet):
    """One relay process per direction, in the switch namespace."""
    return [
        subprocess.Popen(["ip", "netns", "exec", NS_SW, sys.executable, __file__, "--relay",
                          src, dst, "1" if vnet else "0"])
        for src, dst in (("qsgsa1", "qsgsb1"), ("qsgsb1", "qsgsa1"))
    ]


def iperf(secs, streams):
    server = subprocess.Popen(["ip", "netns", "exec", NS_B, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        out = sh("ip", "netns", "exec", NS_A, "iperf3", "-c", IP_B, "-t", str(secs), "-P",
                 str(streams), "-J", check=False).stdout
        j = json.loads(out)
        end = j["end"]
        return end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)
    except (ValueError, KeyError):
        return 0.0, 0
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time", type=int, default=5)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duts", default="bridge,relay")
    ap.add_argument("--relay", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.relay:
        relay(a.relay[0], a.relay[1], a.relay[2] == "1")
        return
    results = {}
    try:
        for _ in range(a.repeat):
            for dut in a.duts.split(","):
                topology(dut)
                relays = start_relays(True) if dut == "relay" else []
                time.sleep(0.3)
                try:
                    gbps, retr = iperf(a.time, a.streams)
                finally:
                    for r in relays:
                        r.kill()
                        r.wait()
                results.setdefault(dut, []).append((gbps, retr))
                print(f"{dut:13} {gbps:6.2f} Gbit/s  {retr} retransmits", flush=True)
    finally:
        cleanup()
    print("\nmedians (Gbit/s):")
    for dut, runs in results.items():
        g = sorted(r[0] for r in runs)
        print(f"{dut:13} {g[len(g) // 2]:6.2f}  runs: {' '.join(f'{r[0]:.2f}' for r in runs)}")


if __name__ == "__main__":
    main()
