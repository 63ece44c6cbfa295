#!/usr/bin/env python3
"""The worker's user-space cost per frame, live: 64-byte frames flat out through the harness.

A study for the goal "the worker's user-space cost <= 50 ns a frame" (docs/BENCHMARKS.md,
"The worker's live cost, per round and per frame"). For each run it starts the packet harness
on the qswitch DUT alone (`qswitch-bench run --duts qswitch --sizes SIZE --trial 6 --steps 1`:
one worker pinned to CPU 1, the generator and the sink on CPU 0), waits for the flat-out trial
to begin, lets it run a second, and samples CPU 1 with `perf record -C 1` over 4 seconds, reading
the worker's counters (`/metrics` of the DUT) as the sampling starts and ends (the worker
publishes them every 100 ms: each end may be that old, about 2.5 % of the window). The harness
is stopped once the flat-out trial is counted.

Per run it prints the frames delivered a second, and, over the sampled window, the worker
thread's time a frame (its samples' share of CPU 1 times the window, over the frames the worker
received in it) and that time's user space (the switch's binary, libc and the vDSO: the goal's
figure), the kernel's share, the frames the worker's rounds found on average, its user-space
time a round, how much of the window its rounds found work (`busy`) and how much of it they
left frames waiting (`behind`: a receive gave all the round asked of it).

Every round pays a round's fixed work (a look at every ring, the clock, the housekeeping
checks) besides its frames' own: across runs, the user-space time a round against the frames a
round separates the two (docs/BENCHMARKS.md). The sampling itself makes the worker's rounds
fuller than they are unobserved.

Several binaries (`--qswitch A --qswitch B`) are run alternately, A B A B ..., so that the VM's
slow and fast minutes fall on both; medians per binary close the output.

Run as root, from the repository, after `cargo build --release -p qswitch -p bench`:
`python3 bench/studies/live_cost.py [--qswitch target/release/qswitch ...] [--repeat 3]
[--size 64]`. Needs perf (linux-perf) and curl. The harness removes what it creates
(namespaces, veths) when interrupted.
"""

import argparse
import collections
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TRIAL = re.compile(r"trial (\d+) B at 0 pps: sent (\d+) in ([0-9.]+) s, (\d+) reached")
# The DUT's API inside its namespace (bench/src/topo.rs), and its worker thread's name.
DUT_NS, DUT_API, WORKER_COMM = "qsbdut", "127.0.0.1:19696", "qswitch-worker"
WORKER = re.compile(r'^qswitch_worker_(rounds_total|rx_frames_total|busy_seconds_total'
                    r'|behind_seconds_total)'
                    r'\{worker="0"\} (\S+)$', re.M)
SAMPLE = re.compile(r"\s*([0-9.]+)%\s+(\S+)\s+(\S+)")

Run = collections.namedtuple(
    "Run", "pps frame_ns user_ns kernel_share per_round busy behind")


def dut_metrics(timeout=2):
    """The DUT's /metrics text (empty if it does not answer within `timeout` seconds)."""
    return subprocess.run(["ip", "netns", "exec", DUT_NS, "curl", "-s", "--max-time",
                           str(timeout), f"http://{DUT_API}/metrics"],
                          capture_output=True, text=True).stdout


def worker_counters():
    """(monotonic time, the worker's rounds, frames received, busy and behind seconds) from
    /metrics."""
    got = {k: float(v) for k, v in WORKER.findall(dut_metrics())}
    if len(got) < 3:
        raise RuntimeError("the DUT's /metrics has no counters of worker 0")
    # A binary from before the behind counter: its share is not known.
    got.setdefault("behind_seconds_total", math.nan)
    return time.monotonic(), got


def interrupt(proc, secs=60):
    """Interrupts `proc` if it still runs, killing it after `secs`. True if it had to be
    killed."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(secs)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True


def stop_harness(proc):
    """Interrupts the harness if it still runs (it removes what it created), killing it after
    60 s."""
    if interrupt(proc):
        print("the harness did not stop within 60 s: killed; its namespaces (qsb*) "
              "and veths may be left", file=sys.stderr)


def worker_shares(perf_data, binary):
    """(the worker thread's share of CPU 1's samples, its user-space share, its kernel share)."""
    out = subprocess.run(
        ["perf", "report", "-i", perf_data, "--sort", "comm,dso", "--stdio", "-q",
         "--percent-limit", "0"],
        capture_output=True, text=True, check=True).stdout
    user_dsos = {os.path.basename(binary), "libc.so.6", "[vdso]"}
    total = user = kernel = 0.0
    for line in out.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(2) != WORKER_COMM:
            continue
        pct, dso = float(m.group(1)) / 100, m.group(3)
        total += pct
        if dso in user_dsos:
            user += pct
        elif dso == "[kernel.kallsyms]":
            kernel += pct
    return total, user, kernel


def one_run(harness, binary, size, cpu, tmp):
    """Runs the harness once and samples the flat-out trial."""
    env = dict(os.environ, QSB_DEBUG="1", QSB_QSWITCH=os.path.abspath(binary))
    cmd = [harness, "run", "--duts", "qswitch", "--sizes", str(size), "--trial", "6",
           "--steps", "1", "--out", os.path.join(tmp, "out")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    started = threading.Event()
    counted = {}
    log = []

    def read():
        for line in proc.stdout:
            log.append(line)
            if f"qswitch {size} B: flat out" in line:
                started.set()
            m = TRIAL.search(line)
            if m and "pps" not in counted:
                sent, secs, delivered = int(m.group(2)), float(m.group(3)), int(m.group(4))
                counted["pps"] = min(delivered, sent) / secs
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    perf_data = os.path.join(tmp, "perf.data")
    try:
        deadline = time.time() + 120
        while not started.wait(0.5):
            if proc.poll() is not None or time.time() > deadline:
                break
        if not started.is_set() or "pps" in counted:
            raise RuntimeError("the flat-out trial did not start:\n" + "".join(log[-20:]))
        time.sleep(1)
        # The sampling runs from before the first reading of the counters to after the last:
        # the shares are of the trial's steady traffic, the counters' window is the one timed.
        perf = subprocess.Popen(["perf", "record", "-q", "-C", str(cpu), "-o", perf_data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            t0, c0 = worker_counters()
            time.sleep(4)
            t1, c1 = worker_counters()
            ended_early = "pps" in counted
        finally:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        if ended_early:
            raise RuntimeError("the flat-out trial ended before the sampling did")
        deadline = time.time() + 30
        while "pps" not in counted and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        if "pps" not in counted:
            raise RuntimeError("no count of the flat-out trial:\n" + "".join(log[-20:]))
    finally:
        stop_harness(proc)
        reader.join(5)
    worker, user, kernel = worker_shares(perf_data, binary)
    window_ns = (t1 - t0) * 1e9
    frames = max(c1["rx_frames_total"] - c0["rx_frames_total"], 1)
    rounds = max(c1["rounds_total"] - c0["rounds_total"], 1)
    return Run(pps=counted["pps"],
               frame_ns=worker * window_ns / frames,
               user_ns=user * window_ns / frames,
               kernel_share=kernel / worker if worker else 0.0,
               per_round=frames / rounds,
               busy=(c1["busy_seconds_total"] - c0["busy_seconds_total"]) * 1e9 / window_ns,
               behind=(c1["behind_seconds_total"] - c0["behind_seconds_total"]) * 1e9 / window_ns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qswitch", action="append",
                    help="a qswitch binary to measure; repeat to alternate several "
                         "(default: target/release/qswitch)")
    ap.add_argument("--harness", default="target/release/qswitch-bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cpu", type=int, default=1, help="the worker's CPU (the harness's: 1)")
    a = ap.parse_args()
    binaries = a.qswitch or ["target/release/qswitch"]
    for b in binaries + [a.harness]:
        if not os.access(b, os.X_OK):
            sys.exit(f"{b}: not an executable (build with cargo build --release first)")
    results = {b: [] for b in binaries}
    rounds = []  # (frames a round, user-space ns a round), every run
    print(f"{a.size} B flat out, perf on CPU {a.cpu}")
    print("| run | binary | delivered Mpps | worker ns a frame | user space ns a frame "
          "| kernel % | frames a round | user space ns a round | rounds with work % "
          "| rounds that left frames waiting % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="qs-live-") as tmp:
        for r in range(a.repeat):
            for b in binaries:
                x = one_run(a.harness, b, a.size, a.cpu, tmp)
                results[b].append(x.user_ns)
                rounds.append((x.per_round, x.user_ns * x.per_round))
                print(f"| {r + 1} | {b} | {x.pps / 1e6:.3f} | {x.frame_ns:.0f} | "
                      f"{x.user_ns:.1f} | {x.kernel_share * 100:.1f} | {x.per_round:.2f} | "
                      f"{x.user_ns * x.per_round:.0f} | {x.busy * 100:.0f} | "
                      f"{'-' if math.isnan(x.behind) else f'{x.behind * 100:.0f}'} |",
                      flush=True)
    print()
    for b, ns in results.items():
        print(f"{b}: user space {statistics.median(ns):.1f} ns a frame "
              f"(median of {len(ns)}: {', '.join(f'{x:.1f}' for x in ns)})")
    xs, ys = [x for x, _ in rounds], [y for _, y in rounds]
    if len(rounds) >= 3 and len(set(xs)) > 1:
        fit = statistics.linear_regression(xs, ys)
        print(f"every run: user space a round = {fit.intercept:.0f} ns + {fit.slope:.1f} ns a "
              f"frame (least squares, correlation {statistics.correlation(xs, ys):.2f})")


if __name__ == "__main__":
    main()
