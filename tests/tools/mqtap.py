#!/usr/bin/env python3
"""A VMM's side of a multi-queue tap device for the integration tests.

  mqtap.py IFACE

Reads commands on stdin and prints "ok" after each:

  attach        opens one more queue of tap IFACE (IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE; the
                first creates it): the tap has an RX queue per queue attached, and a frame
                written into queue Q arrives on its RX queue Q, as a guest's on virtio-net queue
                Q does
  send Q N HEX  writes the frame HEX N times into queue Q

The tap goes when stdin closes (its queues close with the process).
"""
import fcntl
import os
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100


def main():
    iface = sys.argv[1]
    queues = []
    for line in sys.stdin:
        words = line.split()
        if words[0] == "attach":
            fd = os.open("/dev/net/tun", os.O_RDWR)
            flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", iface.encode(), flags))
            queues.append(fd)
        elif words[0] == "send":
            fd, frame = queues[int(words[1])], bytes.fromhex(words[3])
            for _ in range(int(words[2])):
                os.write(fd, frame)
        print("ok", flush=True)


if __name__ == "__main__":
    main()
