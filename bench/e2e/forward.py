#!/usr/bin/env python3
"""End-to-end forwarding rate on veth: qswitch against the Linux bridge and no device at all.

Topology (every name starts with qsb, every address is in 198.18.0.0/15):

    [ns qsbgen] gen-v <-veth-> gen-h [ns qsbdut: DUT] sink-h <-veth-> sink-v [ns qsbsink]

The generator (trafgen -P 1, pinned to CPU 0) sends 64-byte frames from gen-v to sink-v's MAC;
the sink drops them in an nftables netdev ingress chain. DUTs: `none` (gen-v is peered straight
with sink-v: the ceiling of this machine), `bridge` (Linux bridge, bridge-nf-call-iptables=0 in
the DUT namespace), `qswitch` (the release binary, worker pinned to CPU 1, busy polling).
Counters are read by one long-lived reader process per namespace (no fork under load).

Usage: forward.py [--runs N] [--seconds S] [--duts none,bridge,qswitch] [--qswitch PATH]
Prints a table and writes JSON to stdout's last line. Needs root.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

GEN_MAC = "02:00:00:00:00:01"
SINK_MAC = "02:00:00:00:00:02"
NS = ["qsbgen", "qsbsink", "qsbdut"]

READER = r"""
import sys, time
dev = sys.argv[1]
for line in sys.stdin:
    with open('/proc/net/dev') as f:
        for l in f:
            if l.strip().startswith(dev + ':'):
                v = l.split(':', 1)[1].split()
                print(time.monotonic(), v[1], v[9], v[3], flush=True)
"""


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def nsx(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def teardown():
    for ns in NS:
        sh("ip", "netns", "del", ns, check=False)


def setup(dut):
    teardown()
    for ns in NS:
        sh("ip", "netns", "add", ns)
        nsx(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        nsx(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        nsx(ns, "ip", "link", "set", "lo", "up")
    if dut == "none":
        sh("ip", "link", "add", "gen-v", "netns", "qsbgen", "type", "veth", "peer", "name", "sink-v", "netns", "qsbsink")
    else:
        sh("ip", "link", "add", "gen-v", "netns", "qsbgen", "type", "veth", "peer", "name", "gen-h", "netns", "qsbdut")
        sh("ip", "link", "add", "sink-v", "netns", "qsbsink", "type", "veth", "peer", "name", "sink-h", "netns", "qsbdut")
        for d in ("gen-h", "sink-h"):
            nsx("qsbdut", "ip", "link", "set", d, "up")
    nsx("qsbgen", "ip", "link", "set", "gen-v", "address", GEN_MAC, "up")
    nsx("qsbsink", "ip", "link", "set", "sink-v", "address", SINK_MAC, "up")
    nsx("qsbsink", "nft", "add table netdev qsb")
    nsx("qsbsink", "nft", "add chain netdev qsb in { type filter hook ingress device sink-v priority 0; policy drop; }")
    if dut == "bridge":
        nsx("qsbdut", "ip", "link", "add", "br0", "type", "bridge")
        nsx("qsbdut", "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)
        for d in ("gen-h", "sink-h"):
            nsx("qsbdut", "ip", "link", "set", d, "master", "br0")
        nsx("qsbdut", "ip", "link", "set", "br0", "up")


def start_qswitch(binary, workdir):
    cfg = os.path.join(workdir, "qswitch.toml")
    with open(cfg, "w") as f:
        f.write('[switch]\ncpu = 1\npoll = "busy"\n[[network]]\nid = "n"\nvlan = 10\n'
                '[[port]]\nid = "gen"\ndevice = "gen-h"\nnetwork = "n"\n'
                '[[port]]\nid = "sink"\ndevice = "sink-h"\nnetwork = "n"\n')
    log = open(os.path.join(workdir, "qswitch.log"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", "qsbdut", binary, "serve", "--config", cfg,
                          "--db", os.path.join(workdir, "q.db"), "--listen", "127.0.0.1:19696"],
                         stdout=log, stderr=log)
    for _ in range(100):
        out = nsx("qsbdut", "ip", "-o", "link", "show", check=False).stdout
        if out.count(" xdp") >= 2:
            if os.environ.get("QSB_THREADED"):
                for d in ("gen-h", "sink-h"):
                    nsx("qsbdut", "sh", "-c", f"echo 1 > /sys/class/net/{d}/threaded", check=False)
            return p
        time.sleep(0.05)
    p.kill()
    raise SystemExit("qswitch did not open its ports; see " + log.name)


def announce():
    """Both hosts send one frame so the DUT learns where they are."""
    tool = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "tools", "frames.py")
    for ns, dev, src in (("qsbsink", "sink-v", SINK_MAC), ("qsbgen", "gen-v", GEN_MAC)):
        frame = "ffffffffffff" + src.replace(":", "") + "88b5" + "00" * 46
        nsx(ns, "python3", tool, "send", dev, frame)
    time.sleep(0.2)


def trafgen_cfg(path):
    dst = ", ".join("0x" + b for b in SINK_MAC.split(":"))
    src = ", ".join("0x" + b for b in GEN_MAC.split(":"))
    with open(path, "w") as f:
        f.write("{ %s, %s, 0x08, 0x00, 0x45, 0x00, 0x00, 0x2e, 0, 0, 0, 0, 64, 17, 0, 0, "
                "198, 18, 0, 1, 198, 18, 0, 2, 0x04, 0x00, 0x04, 0x00, 0x00, 0x1a, 0, 0, "
                "fill(0x00, 18) }\n" % (dst, src))


class Reader:
    def __init__(self, ns, dev):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", READER, dev],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def snap(self):
        self.p.stdin.write("x\n")
        self.p.stdin.flush()
        t, rxp, txp, rxd = self.p.stdout.readline().split()
        return float(t), int(rxp), int(txp), int(rxd)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def run_once(dut, seconds, binary, workdir):
    setup(dut)
    sw = start_qswitch(binary, workdir) if dut == "qswitch" else None
    try:
        announce()
        cfg = os.path.join(workdir, "frame.cfg")
        trafgen_cfg(cfg)
        gen_r = Reader("qsbgen", "gen-v")
        sink_r = Reader("qsbsink", "sink-v")
        gen = subprocess.Popen(["ip", "netns", "exec", "qsbgen", "taskset", "-c", "0", "trafgen",
                                "-o", "gen-v", "-c", cfg, "-P", "1", "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        time.sleep(1.0)
        g0, s0 = gen_r.snap(), sink_r.snap()
        time.sleep(seconds)
        g1, s1 = gen_r.snap(), sink_r.snap()
        os.killpg(gen.pid, signal.SIGINT)
        gen.wait()
        gen_r.close()
        sink_r.close()
        sent = (g1[2] - g0[2]) / (g1[0] - g0[0])
        got = (s1[1] - s0[1]) / (s1[0] - s0[0])
        res = {"dut": dut, "offered_pps": sent, "forwarded_pps": got,
               "loss": max(0.0, 1 - got / sent) if sent else 0.0}
        if sw:
            sw.send_signal(signal.SIGTERM)
            sw.wait()
            sw = None
            res["worker_ns_per_frame"] = worker_cost(os.path.join(workdir, "qswitch.log"))
        return res
    finally:
        if sw:
            sw.send_signal(signal.SIGTERM)
            sw.wait()
        teardown()


def worker_cost(log):
    """The worker's own cost per frame, as it logs it on shutdown."""
    with open(log) as f:
        for line in f:
            if "ns of busy rounds per frame" in line:
                return float(line.split(" frames received, ")[1].split()[0])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--duts", default="none,bridge,qswitch")
    ap.add_argument("--qswitch", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                        "target", "release", "qswitch"))
    a = ap.parse_args()
    duts = a.duts.split(",")
    results = {d: [] for d in duts}
    with tempfile.TemporaryDirectory(prefix="qsb") as wd:
        try:
            for r in range(a.runs):  # interleaved: one run of each DUT per round
                for d in duts:
                    res = run_once(d, a.seconds, a.qswitch, wd)
                    results[d].append(res)
                    print(f"round {r + 1} {d:8} offered {res['offered_pps'] / 1e6:.3f} Mpps "
                          f"forwarded {res['forwarded_pps'] / 1e6:.3f} Mpps", file=sys.stderr)
        finally:
            teardown()
    med = {d: statistics.median(x["forwarded_pps"] for x in results[d]) for d in duts}
    print(f"\n| DUT | forwarded Mpps (median of {a.runs}) | spread | vs none | vs bridge | max loss |")
    print("|---|---|---|---|---|---|")
    for d in duts:
        vals = [x["forwarded_pps"] for x in results[d]]
        spread = (max(vals) - min(vals)) / med[d] * 100 if med[d] else 0
        vs_none = f"{med[d] / med['none']:.2f}" if med.get("none") else "-"
        vs_br = f"{med[d] / med['bridge']:.2f}" if med.get("bridge") else "-"
        loss = max(x["loss"] for x in results[d]) * 100
        print(f"| {d} | {med[d] / 1e6:.3f} | {spread:.0f}% | {vs_none} | {vs_br} | {loss:.3f}% |")
    costs = [x.get("worker_ns_per_frame") for x in results.get("qswitch", [])]
    costs = [c for c in costs if c]
    if costs:
        print(f"\nqswitch worker thread: {statistics.median(costs):.0f} ns per frame (median), "
              "including its TX syscalls")
    print(json.dumps({"median_pps": med, "runs": results}))


if __name__ == "__main__":
    main()
