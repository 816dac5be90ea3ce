#!/usr/bin/env python3
"""Junk for the flood benchmark: UDP/IPv4 frames written to an AF_PACKET
socket, so that the source addresses can be spoofed. Run only inside the
benchmark's client namespace (bench/run.ts starts it there). Bounded: it
stops after the given number of seconds.

usage: flood.py IFACE SRC_MAC DST_MAC DST_IP DST_PORT PAYLOADS_FILE PAYLOAD_SIZE PPS SECONDS SOURCE
SOURCE is an IPv4 address, or "spoof" for random sources in 198.19.0.0/16.
Prints one JSON line: {"sent": N, "seconds": S}.
"""
import json
import random
import socket
import struct
import sys
import time

SPOOF_FIRST = 0xC6130000  # 198.19.0.0
SPOOF_SIZE = 0x10000
MAX_FRAMES = 8192


def checksum(header):
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def frame(src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port, payload, ident):
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def main():
    iface, src_mac, dst_mac, dst_ip, dst_port, payloads_file, size, pps, seconds, source = sys.argv[1:11]
    size, pps, seconds, dst_port = int(size), int(pps), float(seconds), int(dst_port)
    src_mac = bytes.fromhex(src_mac.replace(":", ""))
    dst_mac = bytes.fromhex(dst_mac.replace(":", ""))
    dst_ip = socket.inet_aton(dst_ip)
    with open(payloads_file, "rb") as handle:
        data = handle.read()
    count = min(len(data) // size, MAX_FRAMES)
    rng = random.Random(6)
    frames = []
    for index in range(count):
        if source == "spoof":
            src_ip = struct.pack("!I", SPOOF_FIRST + rng.randrange(SPOOF_SIZE))
        else:
            src_ip = socket.inet_aton(source)
        payload = data[index * size:(index + 1) * size]
        frames.append(frame(src_mac, dst_mac, src_ip, dst_ip, rng.randrange(1024, 65536), dst_port, payload, index & 0xFFFF))

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    index = 0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        due = int((now - start) * pps)
        while sent < due:
            try:
                sock.send(frames[index])
            except BlockingIOError:
                break
            sent += 1
            index = (index + 1) % count
        time.sleep(0.0005)
    print(json.dumps({"sent": sent, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
