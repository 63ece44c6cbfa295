#!/usr/bin/env python3
"""A tenant's transport traffic for the integration tests (run inside a test namespace), with
every byte checked (but for tcp-sink and tcp-source, which only count how much moves when):
nothing is accepted on the kernel's word alone.

  transport.py tcp-server ADDR PORT           accept one connection, read to EOF, answer
                                              {"bytes": N, "sha256": HEX} and exit
  transport.py tcp-client ADDR PORT BYTES     connect, send BYTES pseudo-random bytes, read the
                                              answer; prints {"ok": bool, "bytes": N, "seconds": S}
  transport.py tcp-sink ADDR PORT SECONDS     accept one connection and read it for SECONDS
                                              (a 256 KiB receive buffer, so that what it counts
                                              is what arrived lately); prints {"received": [bytes
                                              in each quarter second from the connection's start]}
  transport.py tcp-source ADDR PORT SECONDS   connect and send as fast as the connection takes
                                              it for SECONDS, whether or not it moves
  transport.py udp-server ADDR PORT           echo every datagram back until stdin closes
  transport.py udp-client ADDR PORT COUNT SIZE
                                              send COUNT datagrams of SIZE bytes (sequence number
                                              and pseudo-random content), each waiting up to 1 s
                                              for its echo; prints {"sent": N, "echoed": M,
                                              "mismatched": K}
  transport.py icmp-timestamp ADDR COUNT      send COUNT ICMP timestamp requests (IPv4), each
                                              waiting up to 1 s for its reply (the peer's kernel
                                              answers them); prints {"sent": N, "answered": M}

Servers print "ready" on stderr once they listen. The address picks IPv4 or IPv6.
"""
import hashlib
import json
import random
import select
import socket
import struct
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def pattern(seed, n):
    return random.Random(seed).randbytes(n)


def tcp_server(addr, port):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(30)
    print("ready", file=sys.stderr, flush=True)
    c, _ = s.accept()
    c.settimeout(30)
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.sendall(json.dumps({"bytes": n, "sha256": h.hexdigest()}).encode())
    c.close()


def tcp_client(addr, port, nbytes):
    data = pattern(nbytes, nbytes)
    start = time.monotonic()
    c = socket.create_connection((addr, port), timeout=10)
    c.settimeout(30)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        b = c.recv(4096)
        if not b:
            break
        answer += b
    seconds = time.monotonic() - start
    got = json.loads(answer)
    ok = got["bytes"] == nbytes and got["sha256"] == hashlib.sha256(data).hexdigest()
    print(json.dumps({"ok": ok, "bytes": got["bytes"], "seconds": seconds}), flush=True)


def tcp_sink(addr, port, seconds):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(30)
    print("ready", file=sys.stderr, flush=True)
    c, _ = s.accept()
    start = time.monotonic()
    received = [0] * int(seconds * 4)
    while True:
        now = time.monotonic() - start
        if now >= seconds:
            break
        r, _, _ = select.select([c], [], [], 0.05)
        if r:
            b = c.recv(1 << 16)
            if not b:
                break
            received[min(int((time.monotonic() - start) * 4), len(received) - 1)] += len(b)
    print(json.dumps({"received": received}), flush=True)


def tcp_source(addr, port, seconds):
    data = pattern(seconds, 1 << 16)
    c = socket.create_connection((addr, port), timeout=10)
    c.setblocking(False)
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        _, w, _ = select.select([], [c], [], 0.05)
        if w:
            try:
                sent += c.send(data)
            except BlockingIOError:
                pass
    print(json.dumps({"sent": sent}), flush=True)


def udp_server(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("ready", file=sys.stderr, flush=True)
    while True:
        r, _, _ = select.select([s, sys.stdin], [], [], 30)
        if sys.stdin in r or not r:
            return
        b, peer = s.recvfrom(1 << 16)
        s.sendto(b, peer)


def udp_client(addr, port, count, size):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.connect((addr, port))
    s.settimeout(1)
    echoed = mismatched = 0
    for seq in range(count):
        msg = struct.pack("!I", seq) + pattern(seq, max(size - 4, 0))
        s.send(msg)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                b = s.recv(1 << 16)
            except (socket.timeout, ConnectionRefusedError):
                break
            if b == msg:
                echoed += 1
                break
            if b[:4] != msg[:4]:
                continue  # a late echo of an earlier datagram
            mismatched += 1
            break
    print(json.dumps({"sent": count, "echoed": echoed, "mismatched": mismatched}), flush=True)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def icmp_timestamp(addr, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = random.randrange(1 << 16)
    answered = 0
    for seq in range(count):
        body = struct.pack("!HHIII", ident, seq, 0, 0, 0)
        head = struct.pack("!BBH", 13, 0, 0)
        msg = struct.pack("!BBH", 13, 0, checksum(head + body)) + body
        s.sendto(msg, (addr, 0))
        deadline = time.monotonic() + 1
        while (left := deadline - time.monotonic()) > 0:
            r, _, _ = select.select([s], [], [], left)
            if not r:
                break
            b, _ = s.recvfrom(1 << 16)
            icmp = b[(b[0] & 0x0F) * 4:]
            if len(icmp) >= 8 and icmp[0] == 14 and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
                answered += 1
                break
    print(json.dumps({"sent": count, "answered": answered}), flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tcp-server":
        tcp_server(args[0], int(args[1]))
    elif cmd == "tcp-client":
        tcp_client(args[0], int(args[1]), int(args[2]))
    elif cmd == "tcp-sink":
        tcp_sink(args[0], int(args[1]), float(args[2]))
    elif cmd == "tcp-source":
        tcp_source(args[0], int(args[1]), float(args[2]))
    elif cmd == "udp-server":
        udp_server(args[0], int(args[1]))
    elif cmd == "udp-client":
        udp_client(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "icmp-timestamp":
        icmp_timestamp(args[0], int(args[1]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
