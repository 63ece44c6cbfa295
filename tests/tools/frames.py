#!/usr/bin/env python3
"""Raw Ethernet frames for the integration tests (run inside a test namespace).

  frames.py send IFACE HEX [HEX ...]        send each frame as given (tags included)
  frames.py send-rate IFACE PPS COUNT HEX   send COUNT copies of one frame, paced at PPS frames
                                            per second; prints {"sent": N, "seconds": S}, S being
                                            the time from the first send to the last
  frames.py count IFACE SECONDS ETYPE       as capture, but print only {"count": N} at the end
                                            (for many frames: nothing backs up in the pipe)
  frames.py capture IFACE SECONDS [ETYPE]   print one JSON object per frame received:
                                            {"hex": ..., "partial": B, "vlan": VID or null};
                                            with ETYPE (hex), only frames whose payload has
                                            that type.
                                            Stops after SECONDS or when stdin closes.

The kernel moves a received 802.1Q tag out of the frame into metadata; the capture reads it
back from PACKET_AUXDATA, so "vlan" is the tag the frame carried on the wire. "partial" says
whether the kernel handed the frame over with its transport checksum still to be finished
(TP_STATUS_CSUMNOTREADY: the skb is CHECKSUM_PARTIAL, as a local sender's or a veth peer's is).
"""
import json
import select
import socket
import struct
import sys
import time

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 0x8
TP_STATUS_VLAN_VALID = 0x10
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def send(iface, frames):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for h in frames:
        s.send(bytes.fromhex(h))


def send_rate(iface, pps, count, frame):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    data = bytes.fromhex(frame)
    interval = 1.0 / pps
    start = time.perf_counter()
    last = start
    for i in range(count):
        due = start + i * interval
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            if due - now > 0.0005:
                time.sleep(due - now - 0.0003)
        s.send(data)
        last = time.perf_counter()
    print(json.dumps({"sent": count, "seconds": last - start}), flush=True)


def capture(iface, seconds, etype, count_only=False):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, ETH_P_ALL))
    print("ready", file=sys.stderr, flush=True)
    end = time.monotonic() + seconds
    counted = 0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s, sys.stdin], [], [], left)
        if sys.stdin in r and not sys.stdin.buffer.read1(1):
            break
        if s not in r:
            continue
        data, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if addr[2] == PACKET_OUTGOING:
            continue
        vlan = None
        partial = False
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                status, _, _, _, _, tci, _tpid = struct.unpack("IIIHHHH", cdata[:20])
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0x0FFF
                partial = bool(status & TP_STATUS_CSUMNOTREADY)
        if len(data) >= 14 and etype is not None:
            t = struct.unpack("!H", data[12:14])[0]
            if t == 0x8100 and len(data) >= 18:
                t = struct.unpack("!H", data[16:18])[0]
            if t != etype:
                continue
        if count_only:
            counted += 1
            continue
        print(json.dumps({"hex": data.hex(), "partial": partial, "vlan": vlan}), flush=True)
    if count_only:
        print(json.dumps({"count": counted}), flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "send":
        send(sys.argv[2], sys.argv[3:])
    elif cmd == "send-rate":
        send_rate(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "count":
        capture(sys.argv[2], float(sys.argv[3]), int(sys.argv[4], 16), count_only=True)
    elif cmd == "capture":
        etype = int(sys.argv[4], 16) if len(sys.argv) > 4 else None
        capture(sys.argv[2], float(sys.argv[3]), etype)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
