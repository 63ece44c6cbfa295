#!/usr/bin/env python3
"""What one port whose device stops sending does to the other ports of its worker.

A study for the stalled-port handling (docs/BENCHMARKS.md, "A port whose device stops
sending"). Three "VMs" (namespaces qsst-a, qsst-b, qsst-c; 198.18.10.1 to .3) hang off one
qswitch daemon with one worker (pinned to CPU 0), each through a veth. The path into c is made to
stop with its carrier up, as a paused NIC's or a stuck guest's would:
- c's veth takes its frames through NAPI (GRO on in c, TSO off on the switch's end), in a
  kernel thread of its own (threaded NAPI), and the kernel's veth stops its queue when that NAPI
  falls behind (its 256-frame ring full);
- for each trial that thread is starved for `--stall` seconds: moved to CPU 1, given the idle
  scheduling class, and CPU 1 kept busy. The switch's kicks towards c are then refused, and its
  TX ring towards c fills.

During the stall, for all of it but its first and last half second, a sends UDP to c (`--rate`
frames a second, 64 bytes) and pings b every 10 ms. Printed per trial: the ping's loss, mean and
max (b is not c: a switch that lets c hold a and b back loses or delays them), what the switch
sent and dropped towards c, how often it stopped reading a (`backpressure`), and its `sendto`
calls a second (its transmit kicks) and those refused, counted by `perf stat` where perf is
installed; how many times c stalled (`qswitch_port_tx_stalls_total`), how many of the reads of
its status every 100 ms during the pings said stalled (`qswitch_port_tx_stalled`), how long it
was stalled in all during the starvation (`qswitch_port_tx_stalled_seconds_total`, read as the
starvation ends), and, where the last status read said stalled, how long after the stall it
said resumed. Then the
switch's CPU time over 3 s idle, without a stall and with c's ring left full by a stall.

Run as root, from the repository: `python3 bench/studies/stalled_port.py [--binary
target/release/qswitch] [--repeat 3] [--stall 4] [--rate 20000]`. Everything it creates is
removed on exit. Needs 2 CPUs, iproute2, ethtool, util-linux (`taskset`, `chrt`) and curl.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

NS = {"a": "qsst-a", "b": "qsst-b", "c": "qsst-c"}
IP = {"a": "198.18.10.1", "b": "198.18.10.2", "c": "198.18.10.3"}
API, METRICS = "127.0.0.1:19797", "127.0.0.1:19798"

BLAST = """
import socket, sys, time
rate, secs = int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.time(); n = 0
while time.time() - t0 < secs:
    for _ in range(100):
        try:
            s.sendto(b"x" * 18, (sys.argv[1], 9)); n += 1
        except OSError:
            pass
    ahead = n / rate - (time.time() - t0)
    if ahead > 0:
        time.sleep(ahead)
"""


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=True, check=check, text=True, capture_output=True, **kw)


def host(x):
    return f"qsst-{x}0"


def guest(x):
    return f"qsst-{x}1"


def teardown():
    for x in NS:
        sh(f"ip netns del {NS[x]}", check=False)
        sh(f"ip link del {host(x)}", check=False)


def setup(workdir):
    teardown()
    for x in NS:
        sh(f"ip netns add {NS[x]}")
        sh(f"ip link add {host(x)} type veth peer name {guest(x)}")
        sh(f"ip link set {guest(x)} netns {NS[x]}")
        sh(f"ip link set {host(x)} up")
        sh(f"ip netns exec {NS[x]} ip link set lo up")
        sh(f"ip netns exec {NS[x]} ip link set {guest(x)} up")
        sh(f"ip netns exec {NS[x]} ip addr add {IP[x]}/24 dev {guest(x)}")
    # c receives through NAPI, in a thread of its own.
    sh(f"ethtool -K {host('c')} tso off")
    sh(f"ip netns exec {NS['c']} ethtool -K {guest('c')} gro on")
    sh(f"ip netns exec {NS['c']} sh -c 'echo 1 > /sys/class/net/{guest('c')}/threaded'")
    ports = "".join(
        f'\n[[port]]\nid = "{x}"\ndevice = "{host(x)}"\nnetwork = "n"\n' for x in NS
    )
    cfg = os.path.join(workdir, "switch.toml")
    with open(cfg, "w") as f:
        f.write(f'[switch]\nworkers = 1\n\n[[network]]\nid = "n"\nvlan = 10\n{ports}')
    return cfg


def napi_thread():
    # (A kernel thread's name is cut at 15 characters: "napi/qsst-c1-12".)
    out = sh(f"pgrep '^napi/{guest('c')}-'", check=False).stdout.split()
    if not out:
        sys.exit(f"no NAPI thread for {guest('c')}: does this kernel thread veth NAPI?")
    return int(out[0])


class Starved:
    """c's NAPI thread starved (idle class, on a busy CPU 1) for `secs`, then put back."""

    def __init__(self, secs):
        self.napi = napi_thread()
        self.secs = secs

    def __enter__(self):
        self.affinity = sh(f"taskset -pc {self.napi}").stdout.rsplit(":", 1)[1].strip()
        sh(f"taskset -pc 1 {self.napi}")
        sh(f"chrt -i -p 0 {self.napi}")
        self.hog = subprocess.Popen(
            ["taskset", "-c", "1", "nice", "-n", "-20", "timeout", str(self.secs), "sh", "-c",
             "while :; do :; done"])
        return self

    def __exit__(self, *exc):
        self.hog.wait()
        sh(f"chrt -o -p 0 {self.napi}", check=False)
        sh(f"taskset -pc {self.affinity} {self.napi}", check=False)


def blast(secs, rate):
    return subprocess.Popen(
        ["ip", "netns", "exec", NS["a"], "taskset", "-c", "0", sys.executable, "-c", BLAST,
         IP["c"], str(rate), str(secs)])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def counters():
    text = sh(f"curl -s -m 2 http://{METRICS}/metrics").stdout
    got = {"sent": 0, "tx_stalled": 0, "backpressure": 0, "stalls": 0, "stalled_now": 0,
           "stalled_s": 0.0}
    for line in text.splitlines():
        if 'port="c"' not in line:
            continue
        if line.startswith("qswitch_port_tx_stalled_seconds_total"):
            got["stalled_s"] = float(line.rsplit(" ", 1)[1])
            continue
        value = int(float(line.rsplit(" ", 1)[1]))
        if line.startswith("qswitch_port_tx_packets_total"):
            got["sent"] = value
        elif line.startswith("qswitch_port_drops_total") and 'reason="tx_stalled"' in line:
            got["tx_stalled"] = value
        elif line.startswith("qswitch_port_tx_stalls_total"):
            got["stalls"] = value
        elif line.startswith("qswitch_port_tx_stalled{"):
            got["stalled_now"] = value
    for line in text.splitlines():
        if line.startswith("qswitch_port_backpressure_total") and 'port="a"' in line:
            got["backpressure"] = int(float(line.rsplit(" ", 1)[1]))
    return got


class Kicks:
    """Counts the switch's `sendto` calls (its transmit kicks) over `secs` from its opening, and
    those refused (an error, `EAGAIN` from a device whose queue stopped), with `perf stat` on
    the syscall's tracepoints; `count` and `refused` stay None where perf or the tracepoints are
    missing."""

    def __init__(self, pid, secs):
        self.pid = pid
        self.secs = secs
        self.count = self.refused = None

    def __enter__(self):
        self.perf = None
        if shutil.which("perf"):
            self.perf = subprocess.Popen(
                ["perf", "stat", "-x,", "-e", "syscalls:sys_enter_sendto", "-e",
                 "syscalls:sys_exit_sendto", "--filter", "ret < 0", "-p", str(self.pid), "--",
                 "sleep", str(self.secs)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if not self.perf:
            return
        try:
            err = self.perf.communicate(timeout=self.secs + 10)[1]
        except subprocess.TimeoutExpired:
            self.perf.kill()
            self.perf.communicate()
            return
        m = re.search(r"^(\d+),[^,]*,syscalls:sys_enter_sendto", err, re.M)
        self.count = int(m.group(1)) if m else None
        m = re.search(r"^(\d+),[^,]*,syscalls:sys_exit_sendto", err, re.M)
        self.refused = int(m.group(1)) if m else None


class Watch:
    """Reads c's status (`qswitch_port_tx_stalled`) every 100 ms while open: `seen` holds the
    reads, `failed` counts those that failed."""

    def __enter__(self):
        self.seen, self.failed = [], 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def run(self):
        while not self.done.wait(0.1):
            try:
                self.seen.append(counters()["stalled_now"])
            except (subprocess.CalledProcessError, ValueError, IndexError):
                self.failed += 1

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def trial(args, pid):
    before = counters()
    with Starved(args.stall):
        time.sleep(0.5)
        sender = blast(args.stall - 1, args.rate)
        try:
            count = int((args.stall - 1) / 0.01)
            # Counted over the pings' time but their last half second, c's status read every
            # 100 ms meanwhile.
            with Watch() as watch, Kicks(pid, args.stall - 1.5) as kicks:
                ping = sh(f"ip netns exec {NS['a']} ping -c {count} -i 0.01 -W 1 {IP['b']}",
                          check=False)
        finally:
            sender.kill()
            sender.wait()
    stalled_s = counters()["stalled_s"] - before["stalled_s"]
    # c's receive path runs again. If its status said stalled at the last read, how long until
    # it says resumed (None: not stalled then, or not resumed within 2 s).
    t0 = time.time()
    resumed = None
    while watch.seen and watch.seen[-1] and time.time() - t0 < 2:
        if counters()["stalled_now"] == 0:
            resumed = time.time() - t0
            break
        time.sleep(0.01)
    after = counters()
    loss = re.search(r"([\d.]+)% packet loss", ping.stdout)
    rtt = re.search(r"= [\d.]+/([\d.]+)/([\d.]+)/", ping.stdout)
    return {
        "loss_pct": float(loss.group(1)) if loss else 100.0,
        "avg_ms": float(rtt.group(1)) if rtt else float("nan"),
        "max_ms": float(rtt.group(2)) if rtt else float("nan"),
        "kicks": kicks.count,
        "refused": kicks.refused,
        "secs": kicks.secs,
        "during": (sum(watch.seen), len(watch.seen), watch.failed),
        "resumed": resumed,
        "stalled_s": stalled_s,
        **{k: after[k] - before[k] for k in after if k not in ("stalled_now", "stalled_s")},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default="target/release/qswitch")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--stall", type=int, default=4, help="seconds c's receive path is starved")
    p.add_argument("--rate", type=int, default=20000, help="frames a second from a to c")
    args = p.parse_args()
    if args.stall < 2:
        sys.exit("--stall: 2 s at least")
    if os.geteuid() != 0:
        sys.exit("run as root")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs")
    binary = os.path.abspath(args.binary)
    workdir = tempfile.mkdtemp(prefix="qsst-")
    daemon = None
    # A SIGTERM cleans up as an error does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        cfg = setup(workdir)
        log_path = os.path.join(workdir, "qswitch.log")
        log = open(log_path, "w")
        daemon = subprocess.Popen(
            ["taskset", "-c", "0", binary, "serve", "--config", cfg, "--db",
             os.path.join(workdir, "qswitch.db"), "--listen", API, "--metrics-listen", METRICS],
            stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if sh(f"curl -s http://{METRICS}/metrics", check=False).stdout.count('port="c"'):
                break
            time.sleep(0.1)
        else:
            with open(log_path) as f:
                sys.stderr.write(f.read())
            sys.exit("the switch did not come up (its log is above)")
        # Every address learned, c's included.
        for x in ("b", "c"):
            sh(f"ip netns exec {NS['a']} ping -c 2 -i 0.2 {IP[x]}")
        print(f"{binary}: a pings b every 10 ms while c's receive path is starved {args.stall} s "
              f"and a sends c {args.rate} frames/s")
        print("| trial | ping a to b: loss | mean ms | max ms | sent to c | tx_stalled on c "
              "| backpressure on a | the switch's kicks a second | refused | c's stalls "
              "| c's status read stalled | c's time stalled, s "
              "| resumed, s after the stall (if stalled then) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        held = 0
        for k in range(args.repeat):
            r = trial(args, daemon.pid)
            held += r["tx_stalled"] + r["backpressure"]
            kicks, refused = ("-" if r[x] is None else f"{r[x] / r['secs']:.0f}"
                              for x in ("kicks", "refused"))
            resumed = "-" if r["resumed"] is None else f"{r['resumed']:.2f}"
            stalled, reads, failed = r["during"]
            read = f"{stalled} of {reads}" + (f" ({failed} failed)" if failed else "")
            print(f"| {k + 1} | {r['loss_pct']:.1f} % | {r['avg_ms']:.3f} | {r['max_ms']:.1f} "
                  f"| {r['sent']} | {r['tx_stalled']} | {r['backpressure']} | {kicks} "
                  f"| {refused} | {r['stalls']} | {read} | {r['stalled_s']:.2f} "
                  f"| {resumed} |", flush=True)
            time.sleep(1)
        if held == 0:
            print("note: c's ring never filled (no tx_stalled, no backpressure): this kernel's "
                  "veth may not stop its queue when NAPI falls behind")
        # Idle: 3 s without a stall, then 3 s with c's ring left full by one.
        a = cpu_ticks(daemon.pid)
        time.sleep(3)
        quiet = cpu_ticks(daemon.pid) - a
        with Starved(5):
            time.sleep(0.5)
            blast(0.5, args.rate).wait()
            time.sleep(0.5)
            a = cpu_ticks(daemon.pid)
            time.sleep(3)
            stuck = cpu_ticks(daemon.pid) - a
        hz = os.sysconf("SC_CLK_TCK")
        print(f"idle, CPU time of the switch in 3 s: {quiet * 1000 // hz} ms without a stall, "
              f"{stuck * 1000 // hz} ms with c's ring left full")
    finally:
        if daemon:
            daemon.send_signal(signal.SIGINT)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        teardown()
        if daemon:
            log.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
