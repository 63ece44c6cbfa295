#!/usr/bin/env python3
"""A VMM's side of a tap device for the integration tests: the guest's frames written with the
virtio-net header, as QEMU/vhost hand them over with the guest's offloads (checksum offload and
TSO) negotiated.

  vmm.py IFACE SRC_MAC DST_MAC SRC_IP DST_IP

Creates tap IFACE (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, offloads TUN_F_CSUM | TUN_F_TSO4), prints
"ready" on stderr, then for each line read on stdin:

  tso N       one IPv4/TCP frame carrying N payload bytes, as a TSO super-frame
              (VIRTIO_NET_HDR_GSO_TCPV4, gso_size 1448, checksum left partial)
  udp N       one IPv4/UDP datagram of N payload bytes, checksum left partial (NEEDS_CSUM)
  recv S      the first IPv4 TCP or UDP frame the tap hands the VMM within S seconds, printed as
              {"flags": F, "gso": G, "csum_start": C, "csum_offset": O, "hex": FRAME}
              (the virtio-net header's fields), or {"none": true}

Payload byte i is (i * 7 + 1) % 251. Prints "sent" after each frame written. Ends when stdin
closes.
"""
import json
import select
import time
import fcntl
import os
import struct
import sys

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip(s):
    return bytes(int(x) for x in s.split("."))


def fold(s):
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def payload(n):
    return bytes((i * 7 + 1) % 251 for i in range(n))


def frame(src_mac, dst_mac, src, dst, proto, l4):
    """Ethernet + IPv4 (header checksum set) + l4, whose checksum field holds the pseudo-header
    sum (a partial checksum, left for the device)."""
    total = 20 + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", 0xFFFF - fold(words(hdr))) + hdr[12:]
    partial = fold(words(src + dst) + proto + len(l4))
    at = 16 if proto == 6 else 6
    l4 = l4[:at] + struct.pack("!H", partial) + l4[at + 2:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + l4


def receive(fd, seconds):
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return {"none": True}
        data = os.read(fd, 65536)
        flags, gso, _hdr_len, _gso_size, start, offset = struct.unpack("<BBHHHH", data[:10])
        f = data[10:]
        if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] in (6, 17):
            return {"flags": flags, "gso": gso, "csum_start": start, "csum_offset": offset,
                    "hex": f.hex()}


def main():
    iface, src_mac, dst_mac, src, dst = sys.argv[1:6]
    src_mac, dst_mac, src, dst = mac(src_mac), mac(dst_mac), ip(src), ip(dst)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", iface.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", 10))
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
    print("ready", file=sys.stderr, flush=True)
    seq = 1000
    for line in sys.stdin:
        kind, n = line.split()
        if kind == "recv":
            print(json.dumps(receive(fd, float(n))), flush=True)
            continue
        data = payload(int(n))
        if kind == "tso":
            tcp = struct.pack("!HHIIBBHHH", 40000, 5201, seq, 1, 5 << 4, 0x18, 65535, 0, 0) + data
            seq += len(data)
            f = frame(src_mac, dst_mac, src, dst, 6, tcp)
            vnet = struct.pack("<BBHHHH", VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
                               54, 1448, 34, 16)
        else:
            udp = struct.pack("!HHHH", 40000, 5201, 8 + len(data), 0) + data
            f = frame(src_mac, dst_mac, src, dst, 17, udp)
            vnet = struct.pack("<BBHHHH", VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE,
                               0, 0, 34, 6)
        os.write(fd, vnet + f)
        print("sent", flush=True)


if __name__ == "__main__":
    main()
