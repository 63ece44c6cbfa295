#!/usr/bin/env python3
"""The worker through a whole harness run, half a second at a time: where its time goes at each load.

A study for "where frames wait" (docs/BENCHMARKS.md, "Fill rings bounded by a frame's cost while
frames wait"). It runs the packet harness on the qswitch DUT alone (`qswitch-bench run --duts
qswitch --sizes SIZE --trial TRIAL --steps STEPS`: one worker pinned to CPU 1, the generator and
the sink on CPU 0), and every half second reads the DUT's `/metrics` (the worker's frames,
rounds, busy and behind times, fill-ring depth and cost of a frame; the ports' drops for want of
a fill buffer) and the worker thread's user and system time (`/proc`), while `perf stat -I 500`
counts the transmit calls on the worker's CPU (the harness's own threads run on the other). Per
interval with traffic it prints the frames a second the worker received, its rounds a frame, its
transmit calls (`sendto`) a frame, its user and kernel shares of the CPU, the share of the
interval in rounds that found work and in rounds that left frames waiting, the frames the kernel
dropped for want of a fill buffer, and the fill rings' depth and the cost that bounds it. The
harness's own trial lines (`QSB_DEBUG`) follow, with the second they ended.

Run as root, from the repository, after `cargo build --release -p qswitch -p bench`:
`python3 bench/studies/intervals.py [--qswitch BINARY] [--size 64] [--trial 5] [--steps 4]`.
Needs perf (linux-perf) and curl.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from live_cost import DUT_NS, WORKER_COMM, dut_metrics, interrupt, stop_harness

WORKER = re.compile(r'^qswitch_worker_(rounds_total|rx_frames_total|busy_seconds_total'
                    r'|behind_seconds_total|fill_frames|frame_cost_seconds)'
                    r'\{worker="0"\} (\S+)$', re.M)
FILL_EMPTY = re.compile(r'^qswitch_port_xdp_rx_fill_ring_empty_total\{[^}]*\} (\S+)$', re.M)
# A trial's line (`QSB_DEBUG`), after whatever the progress line left before it.
TRIAL = re.compile(r"trial \d+ B at .*")
PERF_STEP = 0.5


def read_metrics():
    """The worker's counters and the ports' fill-ring drops, or None before the DUT answers."""
    out = dut_metrics(timeout=1)
    got = {k: float(v) for k, v in WORKER.findall(out)}
    if "rx_frames_total" not in got:
        return None
    got["fill_empty"] = sum(float(v) for v in FILL_EMPTY.findall(out))
    return got


def worker_stat_path():
    """The DUT's worker thread's /proc stat file, if the DUT runs."""
    pids = subprocess.run(["ip", "netns", "pids", DUT_NS], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    if f.read().strip() == WORKER_COMM:
                        return f"/proc/{pid}/task/{tid}/stat"
        except OSError:
            continue
    return None


def cpu_ticks(path):
    """(user, system) clock ticks of the thread, or None once it is gone."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])
    except (OSError, IndexError, TypeError):
        return None


def read_perf(stream, t0, out, said):
    """Appends (the study's time the line came, count) for each interval line of
    `perf stat -x, -I` on `stream`: perf writes an interval's line as it ends, so the time it
    came is the interval's end on the study's clock (perf's own times start when it is ready,
    some time after it is started)."""
    for line in stream:
        parts = line.strip().split(",")
        try:
            out.append((time.monotonic() - t0, float(parts[1])))
        except (ValueError, IndexError):
            # Not an interval's count: what perf says (kept to show if it counted nothing).
            said.append(line)
            del said[:-10]


def count_between(intervals, a, b):
    """perf's count over [a, b]: each of its intervals' counts in the share that overlaps."""
    total = 0.0
    for end, count in intervals:
        overlap = min(b, end) - max(a, end - PERF_STEP)
        if overlap > 0:
            total += count * overlap / PERF_STEP
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qswitch", default="target/release/qswitch")
    ap.add_argument("--harness", default="target/release/qswitch-bench")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--trial", default="5")
    ap.add_argument("--steps", default="4")
    ap.add_argument("--cpu", type=int, default=1, help="the worker's CPU (the harness's: 1)")
    a = ap.parse_args()
    for b in (a.qswitch, a.harness):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b}: not an executable (build with cargo build --release first)")
    hz = os.sysconf("SC_CLK_TCK")
    samples, trials, tail, calls, perf_said = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="qs-intervals-") as tmp:
        env = dict(os.environ, QSB_DEBUG="1", QSB_QSWITCH=os.path.abspath(a.qswitch))
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [a.harness, "run", "--duts", "qswitch", "--sizes", str(a.size), "--trial", a.trial,
             "--steps", a.steps, "--out", os.path.join(tmp, "out")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

        def read():
            for line in proc.stdout:
                tail.append(line)
                del tail[:-20]
                m = TRIAL.search(line)
                if m:
                    trials.append((time.monotonic() - t0, m.group(0)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        perf = perf_reader = None
        try:
            # `sendto` on the worker's CPU: the harness keeps its own threads off it.
            perf = subprocess.Popen(
                ["perf", "stat", "-C", str(a.cpu), "-x,", "-I", str(int(PERF_STEP * 1000)),
                 "-e", "syscalls:sys_enter_sendto"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
            perf_reader = threading.Thread(target=read_perf, args=(perf.stderr, t0, calls, perf_said),
                                           daemon=True)
            perf_reader.start()
            stat = None
            while proc.poll() is None:
                time.sleep(0.5)
                asked = time.monotonic() - t0
                m = read_metrics()
                if m is None:
                    continue
                # The counters' time: half way through the request (they are published every
                # 100 ms besides).
                at = (asked + time.monotonic() - t0) / 2
                ticks = cpu_ticks(stat)
                if ticks is None:
                    stat = worker_stat_path()
                    ticks = cpu_ticks(stat)
                samples.append((at, m, (stat, ticks)))
        finally:
            stop_harness(proc)
            if perf is not None:
                interrupt(perf, 30)
            if perf_reader is not None:
                perf_reader.join(5)
            reader.join(5)
    if proc.returncode != 0 or not samples:
        sys.exit(f"the harness ended with {proc.returncode}, {len(samples)} samples:\n"
                 + "".join(tail))
    if not calls:
        print(f"perf counted nothing (exit {perf.returncode}): no sendto column\n"
              + "".join(perf_said), file=sys.stderr)
    print(f"{a.size} B, {a.trial} s trials; per half second with traffic:")
    print("| s | kfps | rounds a frame | sendto a frame | user % | kernel % | busy % | behind % "
          "| fill-ring drops | fill depth | frame cost µs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (t_a, m_a, c_a), (t_b, m_b, c_b) in zip(samples, samples[1:]):
        dt = t_b - t_a
        frames = m_b["rx_frames_total"] - m_a["rx_frames_total"]
        if frames < 1000:
            continue
        sendto = count_between(calls, t_a, t_b) / frames if calls else float("nan")
        user = kernel = float("nan")
        # Not across a restart of the DUT: another thread's times.
        (stat_a, ticks_a), (stat_b, ticks_b) = c_a, c_b
        if ticks_a and ticks_b and stat_a == stat_b:
            user = (ticks_b[0] - ticks_a[0]) / hz / dt * 100
            kernel = (ticks_b[1] - ticks_a[1]) / hz / dt * 100
        print(f"| {t_b:.1f} | {frames / dt / 1e3:.1f} "
              f"| {(m_b['rounds_total'] - m_a['rounds_total']) / frames:.2f} | {sendto:.2f} "
              f"| {user:.0f} | {kernel:.0f} "
              f"| {(m_b['busy_seconds_total'] - m_a['busy_seconds_total']) / dt * 100:.0f} "
              f"| {(m_b['behind_seconds_total'] - m_a['behind_seconds_total']) / dt * 100:.0f} "
              f"| {m_b['fill_empty'] - m_a['fill_empty']:.0f} | {m_b.get('fill_frames', 0):.0f} "
              f"| {m_b.get('frame_cost_seconds', 0) * 1e6:.2f} |")
    print()
    for t, line in trials:
        print(f"- {t:.1f} s: {line}")


if __name__ == "__main__":
    main()
