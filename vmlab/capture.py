"""What crosses the VM lab's link, read on this machine's loopback: no tcpdump, no change to the VMs.

The link is qemu's UDP socket pair (127.0.0.1:22511 <-> 127.0.0.1:22522), one Ethernet frame per datagram, so
a packet socket on `lo` sees every frame the VMs exchange. Made for the drill's proofs: the traffic between the
servers is ESP only, and a marker written in clear on one server never shows on the wire.

    python3 -m vmlab.capture --seconds N [--marker TEXT] [--pcap FILE] [--json] [--ports 22511,22522]

Root only (AF_PACKET). Standard library only.

Each datagram shows twice on `lo`: once leaving (PACKET_OUTGOING, handed to the socket while `sendto` runs)
and once arriving (PACKET_HOST). Only the leaving copy is kept; the arriving copies are counted, not stored.
Frames inside the datagrams are parsed as plain Ethernet II: 802.1Q tags are not decoded (the lab's link has
no VLAN), a tagged frame counts as `other`.
"""
import argparse
import ctypes
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

LINK_PORTS = (22511, 22522)

ETH_P_ALL, ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0003, 0x0800, 0x0806, 0x86DD
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ESP = 1, 6, 17, 50
PACKET_HOST, PACKET_OUTGOING = 0, 4
SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_ATTACH_FILTER, SO_RCVBUFFORCE = 26, 33
SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35   # Linux (the socket module has no name for it)

KINDS = ("esp", "tcp", "udp", "icmp", "arp", "ipv6", "other")
MAX_SPIS = 256              # distinct SPIs counted; more (garbage on the link) only bump `spis_overflow`
PCAP_SNAPLEN = 65535
LINKTYPE_ETHERNET = 1


# ---------------------------------------------------------------- parsing (pure)

def link_datagram(packet: bytes, ports: Iterable[int]) -> Optional[Tuple[int, int, bytes]]:
    """An IPv4 packet seen on `lo` -> (source port, destination port, UDP payload) when it is an unfragmented
    UDP datagram to or from one of `ports`; else None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or packet[9] != IPPROTO_UDP or len(packet) < ihl + 8:
        return None
    if struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:   # MF or an offset: lo's MTU is 64 KiB, never split
        return None
    src, dst, udp_len = struct.unpack_from("!HHH", packet, ihl)
    if src not in ports and dst not in ports:
        return None
    end = ihl + udp_len if udp_len >= 8 else len(packet)
    return src, dst, bytes(packet[ihl + 8:end])


class Kind(NamedTuple):
    name: str               # one of KINDS
    ipv4: bool              # an IPv4 packet (esp, tcp, udp, icmp, or another IP protocol counted as other)
    spi: Optional[str]      # ESP only: the SPI as 8 hex digits


def classify(frame: bytes) -> Kind:
    """An Ethernet II frame -> its Kind. The SPI is read from an ESP packet's first fragment only: later
    fragments carry no ESP header."""
    if len(frame) < 14:
        return Kind("other", False, None)
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == ETH_P_ARP:
        return Kind("arp", False, None)
    if ethertype == ETH_P_IPV6:
        return Kind("ipv6", False, None)
    ip = frame[14:]
    if ethertype != ETH_P_IP or len(ip) < 20 or ip[0] >> 4 != 4:
        return Kind("other", False, None)
    ihl = (ip[0] & 0x0F) * 4
    if ihl < 20 or len(ip) < ihl:
        return Kind("other", False, None)
    proto = ip[9]
    if proto == IPPROTO_ESP:
        first = not struct.unpack_from("!H", ip, 6)[0] & 0x1FFF
        spi = ip[ihl:ihl + 4].hex() if first and len(ip) >= ihl + 4 else None
        return Kind("esp", True, spi)
    name = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMP: "icmp"}.get(proto, "other")
    return Kind(name, True, None)


@dataclass
class Summary:
    """Counts over every link frame seen (stored or not). Each frame is in exactly one of KINDS; `ipv4` counts
    the IPv4 ones among them (esp + tcp + udp + icmp + other IPv4 protocols)."""
    frames: int = 0
    bytes: int = 0
    ipv4: int = 0
    esp: int = 0
    tcp: int = 0
    udp: int = 0
    icmp: int = 0
    arp: int = 0
    ipv6: int = 0
    other: int = 0
    spis: Dict[str, int] = field(default_factory=dict)
    spis_overflow: int = 0
    directions: Dict[str, int] = field(default_factory=dict)

    def add(self, frame: bytes, src_port: int = 0, dst_port: int = 0) -> Kind:
        kind = classify(frame)
        self.frames += 1
        self.bytes += len(frame)
        self.ipv4 += kind.ipv4
        setattr(self, kind.name, getattr(self, kind.name) + 1)
        if kind.spi is not None:
            spi = kind.spi
            if spi in self.spis or len(self.spis) < MAX_SPIS:
                self.spis[spi] = self.spis.get(spi, 0) + 1
            else:
                self.spis_overflow += 1
        direction = f"{src_port}->{dst_port}"
        if direction in self.directions or len(self.directions) < 16:
            self.directions[direction] = self.directions.get(direction, 0) + 1
        return kind

    def as_dict(self) -> dict:
        return {"frames": self.frames, "bytes": self.bytes, "ipv4": self.ipv4,
                **{k: getattr(self, k) for k in KINDS},
                "spis": dict(sorted(self.spis.items())), "spis_overflow": self.spis_overflow,
                "directions": dict(sorted(self.directions.items()))}


# ---------------------------------------------------------------- pcap

def pcap_bytes(frames: Iterable[Tuple[float, bytes]]) -> bytes:
    """Classic pcap (microsecond timestamps, little-endian), linktype Ethernet."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, PCAP_SNAPLEN, LINKTYPE_ETHERNET)]
    for stamp, frame in frames:
        sec = int(stamp)
        usec = min(int(round((stamp - sec) * 1e6)), 999_999)
        kept = frame[:PCAP_SNAPLEN]
        out.append(struct.pack("<IIII", sec, usec, len(kept), len(frame)))
        out.append(kept)
    return b"".join(out)


def write_private(path: str, data: bytes) -> None:
    """Write `data` to `path`, mode 0600 even when the file existed (the frames may hold anything)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the socket

def port_filter(ports: Iterable[int]) -> bytes:
    """A classic BPF program for a SOCK_DGRAM packet socket (offset 0 = the IPv4 header): accept unfragmented
    UDP with a source or destination port in `ports`, drop the rest in the kernel (SSH, the API, ...)."""
    ports = list(ports)
    n = len(ports)
    # layout: 0 ldb[9]; 1 jeq 17; 2 ldh[6]; 3 jset 0x3fff; 4 ldxb msh; 5 ldh[x+0]; n x jeq;
    #         ldh[x+2]; n x jeq; drop; accept
    drop = 6 + n + 1 + n
    accept = drop + 1
    prog = []

    def ins(code, jt, jf, k):
        prog.append((code, jt, jf, k))

    def to(target):
        return target - (len(prog) + 1)

    ins(0x30, 0, 0, 9)                       # ldb [9]            protocol
    ins(0x15, 0, to(drop), IPPROTO_UDP)      # jeq #17
    ins(0x28, 0, 0, 6)                       # ldh [6]            flags + fragment offset
    ins(0x45, to(drop), 0, 0x3FFF)           # jset MF|offset -> drop
    ins(0xB1, 0, 0, 0)                       # ldxb 4*([0]&0xf)   header length
    ins(0x48, 0, 0, 0)                       # ldh [x+0]          source port
    for port in ports:
        ins(0x15, to(accept), 0, port)
    ins(0x48, 0, 0, 2)                       # ldh [x+2]          destination port
    for port in ports:
        ins(0x15, to(accept), 0, port)
    ins(0x06, 0, 0, 0)                       # ret #0
    ins(0x06, 0, 0, 0x40000)                 # ret #262144        whole packet
    assert len(prog) == accept + 1
    return b"".join(struct.pack("HBBI", *i) for i in prog)


def attach_filter(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class Capture:
    """Capture of the link's frames on `lo`, in a reader thread, for the time of a `with` block.

    Memory is bounded: frames beyond `limit_frames` or `limit_bytes` are counted in the summary and in
    `over_limit` but not stored, so `contains()` and the pcap cover the stored frames only (`complete` says
    whether that is all of them)."""

    def __init__(self, ports: Iterable[int] = LINK_PORTS, limit_bytes: int = 64 << 20,
                 limit_frames: int = 200_000, interface: str = "lo"):
        ports = tuple(int(p) for p in ports)
        if not ports or any(not 0 < p < 65536 for p in ports):
            raise ValueError(f"ports: {ports!r} is not a list of UDP ports (1..65535)")
        if limit_bytes < 0 or limit_frames < 0:
            raise ValueError(f"limit_bytes/limit_frames: {limit_bytes}/{limit_frames}, expected >= 0")
        self.ports = ports
        self.interface = interface
        self.limit_bytes, self.limit_frames = limit_bytes, limit_frames
        self.frames: List[Tuple[float, int, int, bytes]] = []   # (epoch, src port, dst port, frame)
        self.summary = Summary()
        self.stored_bytes = 0
        self.over_limit = 0
        self.incoming_copies = 0        # the second sighting of each datagram (PACKET_HOST), skipped
        self.other_copies = 0           # any other packet type (not expected on lo)
        self.truncated = 0
        self.kernel_packets = self.kernel_drops = 0
        self.started_at = self.stopped_at = None
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._wake: Optional[Tuple[int, int]] = None
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None

    # -- lifecycle
    def __enter__(self) -> "Capture":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("capture already started")
        if os.geteuid() != 0:
            raise PermissionError("capturing on lo needs root (an AF_PACKET socket)")
        # Protocol 0 receives nothing until bind: the filter is in place before the first packet arrives.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            attach_filter(sock, port_filter(self.ports))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.bind((self.interface, ETH_P_ALL))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._wake = os.pipe()
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="vmlab-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Read what is already queued, then stop the thread and close the socket. Idempotent."""
        if self._thread is None:
            return
        os.write(self._wake[1], b"x")
        self._thread.join(timeout=10)
        alive = self._thread.is_alive()
        self._stats()
        self.stopped_at = time.time()
        if not alive:
            self._sock.close()
            for fd in self._wake:
                os.close(fd)
            self._sock = self._wake = None
        self._thread = None
        if alive:
            raise RuntimeError("capture reader thread did not stop within 10 s")
        if self.error is not None:
            raise RuntimeError(f"capture reader failed: {self.error}") from self.error

    def _stats(self) -> None:
        """Add the kernel's counters since the last read (reading them resets them)."""
        packets, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self.kernel_packets += packets
        self.kernel_drops += drops

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._sock, self._wake[0]], [], [])
                if self._sock in ready:
                    self._drain()
                if self._wake[0] in ready:
                    for _ in range(1000):  # whatever arrived up to the stop request, bounded
                        if self._drain():
                            break
                    return
        except BaseException as err:       # reported by stop()
            self.error = err

    def _drain(self) -> bool:
        """Take what is queued; True once the queue is empty (False: a long burst, more to read)."""
        ancsize = socket.CMSG_SPACE(16)
        for _ in range(10_000):
            try:
                data, anc, flags, addr = self._sock.recvmsg(65536, ancsize)
            except BlockingIOError:
                return True
            self._take(data, anc, flags, addr)
        return False

    def _take(self, data: bytes, anc, flags: int, addr) -> None:
        pkttype = addr[2]
        if pkttype != PACKET_OUTGOING:
            with self._lock:
                if pkttype == PACKET_HOST:
                    self.incoming_copies += 1
                else:
                    self.other_copies += 1
            return
        if flags & socket.MSG_TRUNC:
            with self._lock:
                self.truncated += 1
            return
        found = link_datagram(data, self.ports)
        if found is None:
            return
        src, dst, frame = found
        stamp = time.time()
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack_from("qq", value)
                stamp = sec + nsec / 1e9
        self.add(stamp, src, dst, frame)

    def add(self, stamp: float, src: int, dst: int, frame: bytes) -> None:
        """Count one link frame and store it while within the limits."""
        with self._lock:
            self.summary.add(frame, src, dst)
            if (len(self.frames) < self.limit_frames
                    and self.stored_bytes + len(frame) <= self.limit_bytes):
                self.frames.append((stamp, src, dst, frame))
                self.stored_bytes += len(frame)
            else:
                self.over_limit += 1

    # -- results
    @property
    def complete(self) -> bool:
        return self.over_limit == 0 and self.truncated == 0 and self.kernel_drops == 0

    def contains(self, marker: bytes) -> int:
        """How many stored frames hold `marker` anywhere (headers included)."""
        if not marker:
            raise ValueError("marker: empty, expected at least one byte")
        with self._lock:
            return sum(1 for _, _, _, frame in self.frames if marker in frame)

    def write_pcap(self, path: str) -> int:
        """The stored frames as a classic pcap (Ethernet) at `path`, mode 0600. Returns the number of frames."""
        with self._lock:
            frames = [(stamp, frame) for stamp, _, _, frame in self.frames]
        write_private(path, pcap_bytes(frames))
        return len(frames)

    def report(self) -> dict:
        with self._lock:
            out = self.summary.as_dict()
            out.update(ports=list(self.ports), stored=len(self.frames), stored_bytes=self.stored_bytes,
                       over_limit=self.over_limit, incoming_copies=self.incoming_copies,
                       other_copies=self.other_copies, truncated=self.truncated,
                       kernel_packets=self.kernel_packets, kernel_drops=self.kernel_drops,
                       complete=self.complete)
        if self.started_at is not None:
            out["seconds"] = round((self.stopped_at or time.time()) - self.started_at, 3)
        return out


# ---------------------------------------------------------------- CLI

def _text(report: dict) -> str:
    lines = [f"link frames {report['frames']} ({report['bytes']} bytes) on UDP ports "
             f"{','.join(map(str, report['ports']))} over {report.get('seconds', 0)} s",
             "  " + "  ".join(f"{k} {report[k]}" for k in ("ipv4",) + KINDS)]
    for spi, count in report["spis"].items():
        lines.append(f"  ESP SPI 0x{spi}: {count} packets")
    for direction, count in report["directions"].items():
        lines.append(f"  {direction}: {count} frames")
    if "marker" in report:
        lines.append(f"  frames holding the marker: {report['marker']}")
    if not report["complete"]:
        lines.append(f"  INCOMPLETE: {report['over_limit']} frames over the limits, {report['truncated']} "
                     f"truncated, {report['kernel_drops']} dropped by the kernel")
    if "pcap" in report:
        lines.append(f"  pcap: {report['pcap']} ({report['stored']} frames)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m vmlab.capture",
                                     description="Count what crosses the VM lab's link (root).")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--marker", help="count the frames holding this text (UTF-8)")
    parser.add_argument("--pcap", help="write the frames to this file (classic pcap, mode 0600)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--ports", default=",".join(map(str, LINK_PORTS)),
                        help="the link's UDP ports on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--limit-mb", type=int, default=256, help="frames stored at most (default %(default)s)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 86400:
        print(f"capture: --seconds {args.seconds}: expected a duration in 0..86400", file=sys.stderr)
        return 2
    if args.limit_mb < 1:
        print(f"capture: --limit-mb {args.limit_mb}: expected at least 1", file=sys.stderr)
        return 2
    try:
        ports = [int(p) for p in args.ports.split(",") if p.strip()]
        capture = Capture(ports=ports, limit_bytes=args.limit_mb << 20, limit_frames=10_000_000)
    except ValueError as err:
        print(f"capture: --ports {args.ports!r}: {err}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("capture: needs root (an AF_PACKET socket on lo)", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with capture:
        try:
            stop.wait(args.seconds)
        except KeyboardInterrupt:
            pass
    report = capture.report()
    if args.marker:
        report["marker"] = capture.contains(args.marker.encode())
    if args.pcap:
        capture.write_pcap(args.pcap)
        report["pcap"] = args.pcap
    print(json.dumps(report, sort_keys=True) if args.json else _text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
