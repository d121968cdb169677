"""ICMP echo prober: one JSON line per probe on stdout, for the failover drill.

    python3 -m drill.probe TARGET [--interval 0.1] [--duration 300] [--timeout 1.0]

Each line is {"seq": n, "sent": epoch, "answered": epoch or null}; a probe is written when its answer arrives
or when `timeout` passed without one. Runs as root (raw socket); standard library only, so it also runs with
the system Python inside a lab namespace. Stops after `duration` seconds, on SIGTERM, or when stdout closes.
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"ovh-ha-drill"
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload


def parse_reply(packet: bytes, ident: int):
    """The sequence number of our echo reply in a raw IPv4 packet, else None."""
    if len(packet) < 20:
        return None
    offset = (packet[0] & 0x0F) * 4
    if len(packet) < offset + 8:
        return None
    kind, _code, _sum, rid, seq = struct.unpack("!BBHHH", packet[offset:offset + 8])
    return seq if kind == ECHO_REPLY and rid == ident else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m drill.probe")
    parser.add_argument("target")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    if not 0.01 <= args.interval <= 10 or not 0 < args.duration <= 3600 or not 0 < args.timeout <= 10:
        print("probe: --interval 0.01..10, --duration 0..3600, --timeout 0..10 seconds", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    outstanding = {}
    seq, start = 0, time.monotonic()
    next_send = start

    def emit(number, sent, answered):
        sys.stdout.write(json.dumps({"seq": number, "sent": sent, "answered": answered}) + "\n")
        sys.stdout.flush()

    try:
        while not stop and time.monotonic() - start < args.duration:
            now = time.monotonic()
            if now >= next_send:
                seq = (seq + 1) & 0xFFFF
                outstanding[seq] = (time.time(), now)
                try:
                    sock.sendto(echo_request(ident, seq), (args.target, 0))
                except OSError:
                    pass  # unreachable for now: counted as a lost probe
                next_send += args.interval
            ready, _, _ = select.select([sock], [], [], max(0.0, min(next_send - time.monotonic(), 0.05)))
            if ready:
                packet, _ = sock.recvfrom(2048)
                number = parse_reply(packet, ident)
                if number in outstanding:
                    sent, _ = outstanding.pop(number)
                    emit(number, sent, time.time())
            expired = [n for n, (_, mono) in outstanding.items() if time.monotonic() - mono > args.timeout]
            for number in expired:
                emit(number, outstanding.pop(number)[0], None)
    except BrokenPipeError:
        return 0
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
