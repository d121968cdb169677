"""The link capture: the frame parser on hand-built frames, and a real capture on this machine's loopback of
datagrams the test sends itself between two free ports (never the VM lab's 22511/22522)."""
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys

import pytest

from vmlab import capture
from vmlab.capture import KINDS, Capture, Summary, classify, link_datagram, pcap_bytes

SRC_MAC, DST_MAC = bytes.fromhex("525400c00211"), bytes.fromhex("525400c00222")
A, B = bytes([192, 0, 2, 11]), bytes([192, 0, 2, 22])
MARKER = b"vmlab-capture-marker-7f3a"


def ether(ethertype: int, payload: bytes, tag: bytes = b"") -> bytes:
    return DST_MAC + SRC_MAC + tag + struct.pack("!H", ethertype) + payload


def ipv4(proto: int, payload: bytes, frag: int = 0, src=A, dst=B) -> bytes:
    """An IPv4 header without options (checksum left 0: nothing here reads it)."""
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0, src, dst) + payload


def esp(spi: int, seq: int = 1) -> bytes:
    return ether(0x0800, ipv4(50, struct.pack("!II", spi, seq) + bytes(range(48))))


def tcp(payload: bytes = b"") -> bytes:
    return ether(0x0800, ipv4(6, struct.pack("!HHIIBBHHH", 7788, 40000, 1, 0, 0x50, 0x18, 512, 0, 0) + payload))


def udp(payload: bytes = b"") -> bytes:
    return ether(0x0800, ipv4(17, struct.pack("!HHHH", 694, 694, 8 + len(payload), 0) + payload))


def icmp(payload: bytes = b"") -> bytes:
    return ether(0x0800, ipv4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + payload))


def arp() -> bytes:
    return ether(0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, SRC_MAC, A, bytes(6), B))


PARSED = [
    ("esp", esp(0xC0FFEE01), ("esp", True, "c0ffee01")),
    ("esp-later-fragment", ether(0x0800, ipv4(50, bytes(64), frag=0x00B9)), ("esp", True, None)),
    ("esp-too-short-for-spi", ether(0x0800, ipv4(50, b"\x01\x02")), ("esp", True, None)),
    ("tcp", tcp(b"drbd"), ("tcp", True, None)),
    ("udp", udp(b"heartbeat"), ("udp", True, None)),
    ("icmp-with-marker", icmp(MARKER), ("icmp", True, None)),
    ("arp", arp(), ("arp", False, None)),
    ("ipv6", ether(0x86DD, bytes(40)), ("ipv6", False, None)),
    ("gre-is-other-ipv4", ether(0x0800, ipv4(47, bytes(8))), ("other", True, None)),
    ("vlan-tag-not-decoded", ether(0x0800, ipv4(50, bytes(8)), tag=b"\x81\x00\x00\x05"), ("other", False, None)),
    ("ipv4-header-cut", ether(0x0800, ipv4(6, b"")[:12]), ("other", False, None)),
    ("not-version-4", ether(0x0800, b"\x65" + ipv4(6, b"")[1:]), ("other", False, None)),
    ("runt", b"\x00" * 10, ("other", False, None)),
]


@pytest.mark.parametrize("frame, expected", [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_classify(frame, expected):
    assert tuple(classify(frame)) == expected


def test_summary_counts_each_frame_once():
    summary = Summary()
    for _, frame, _ in PARSED:
        summary.add(frame, 22511, 22522)
    summary.add(esp(0xC0FFEE01, 2), 22511, 22522)
    summary.add(esp(0x0000BEEF), 22522, 22511)
    counts = summary.as_dict()
    assert counts["frames"] == len(PARSED) + 2
    assert sum(counts[k] for k in KINDS) == counts["frames"]
    assert (counts["esp"], counts["tcp"], counts["udp"], counts["icmp"], counts["arp"], counts["ipv6"],
            counts["other"]) == (5, 1, 1, 1, 1, 1, 5)
    assert counts["ipv4"] == 5 + 1 + 1 + 1 + 1                  # + the GRE packet among `other`
    assert counts["spis"] == {"0000beef": 1, "c0ffee01": 2}
    assert counts["directions"] == {"22511->22522": len(PARSED) + 1, "22522->22511": 1}


def test_summary_bounds_the_spi_table(monkeypatch):
    monkeypatch.setattr(capture, "MAX_SPIS", 2)
    summary = Summary()
    for spi in (1, 2, 3, 1):
        summary.add(esp(spi))
    assert summary.spis == {"00000001": 2, "00000002": 1} and summary.spis_overflow == 1


def udp_on_lo(src: int, dst: int, payload: bytes, length=None, frag: int = 0) -> bytes:
    """An IPv4/UDP packet as a packet socket on lo hands it over (SOCK_DGRAM: from the IP header on)."""
    header = struct.pack("!HHHH", src, dst, 8 + len(payload) if length is None else length, 0)
    return ipv4(17, header + payload, frag=frag, src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 1]))


def test_link_datagram_takes_the_frame_out():
    frame = esp(7)
    assert link_datagram(udp_on_lo(40001, 40002, frame), (40001, 40002)) == (40001, 40002, frame)
    assert link_datagram(udp_on_lo(40002, 50000, frame), (40001, 40002)) == (40002, 50000, frame)
    assert link_datagram(udp_on_lo(50000, 50001, frame), (40001, 40002)) is None          # not the link
    assert link_datagram(udp_on_lo(40001, 40002, frame, frag=0x2000), (40001, 40002)) is None  # fragment
    assert link_datagram(udp_on_lo(40001, 40002, frame + b"pad"), (40001, 40002))[2] == frame + b"pad"
    trailing = udp_on_lo(40001, 40002, frame, length=8 + len(frame)) + b"\0\0\0"
    assert link_datagram(trailing, (40001, 40002))[2] == frame                            # UDP length rules
    assert link_datagram(ipv4(6, bytes(20)), (40001, 40002)) is None                       # TCP


def test_limits_keep_counting_but_stop_storing():
    cap = Capture(ports=(40001, 40002), limit_frames=2, limit_bytes=1 << 20)
    for frame in (esp(1), icmp(MARKER), icmp(MARKER)):
        cap.add(1.0, 40001, 40002, frame)
    assert cap.summary.frames == 3 and cap.summary.icmp == 2
    assert len(cap.frames) == 2 and cap.over_limit == 1 and not cap.complete
    assert cap.contains(MARKER) == 1                         # the stored frames only, as documented
    small = Capture(ports=(40001,), limit_bytes=len(esp(1)) + 1)
    small.add(1.0, 40001, 40002, esp(1))
    small.add(1.0, 40001, 40002, esp(1))
    assert len(small.frames) == 1 and small.over_limit == 1


def test_bad_ports_are_named():
    with pytest.raises(ValueError, match=r"ports: \(0,\)"):
        Capture(ports=(0,))


def read_pcap(data: bytes):
    """A classic pcap read back independently of capture.pcap_bytes: (header fields, [(sec, usec, frame)])."""
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", data, 0)
    records, offset = [], 24
    while offset < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, offset)
        offset += 16
        records.append((sec, usec, data[offset:offset + incl], orig))
        offset += incl
    assert offset == len(data)
    return (magic, major, minor, zone, sigfigs, snaplen, linktype), records


def test_pcap_layout():
    header, records = read_pcap(pcap_bytes([(1795608000.25, esp(1)), (1795608001.0, arp())]))
    assert header == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    assert records == [(1795608000, 250000, esp(1), len(esp(1))), (1795608001, 0, arp(), len(arp()))]


# ---------------------------------------------------------------- a real capture on lo

def need_root():
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root (an AF_PACKET socket); run the tests as root")


@pytest.fixture
def link():
    """Two UDP sockets on free loopback ports: the two ends of a pretend link, like qemu's."""
    ends = []
    for _ in range(2):
        end = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end.bind(("127.0.0.1", 0))
        end.settimeout(10)
        ends.append(end)
    ports = tuple(end.getsockname()[1] for end in ends)
    assert not set(ports) & set(capture.LINK_PORTS)
    yield ends, ports
    for end in ends:
        end.close()


def send(src: socket.socket, dst: socket.socket, frame: bytes) -> None:
    """Send one datagram and take it at the far end: both of its sightings on lo have then happened."""
    src.sendto(frame, dst.getsockname())
    assert dst.recv(65536) == frame


def test_real_capture_on_loopback(link, tmp_path):
    need_root()
    (left, right), ports = link
    stranger_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger_b.settimeout(10)
    stranger_a.bind(("127.0.0.1", 0))
    stranger_b.bind(("127.0.0.1", 0))
    spi = 0x5EC0DE42
    sent = [esp(spi), icmp(MARKER)]
    try:
        with Capture(ports=ports) as cap:
            send(left, right, sent[0])
            send(right, left, sent[1])
            send(stranger_a, stranger_b, icmp(MARKER))         # same bytes, other ports: not the link
    finally:
        stranger_a.close()
        stranger_b.close()
    report = cap.report()
    assert report["frames"] == 2 and report["esp"] == 1 and report["icmp"] == 1
    assert report["spis"] == {"5ec0de42": 1}
    assert report["directions"] == {f"{ports[0]}->{ports[1]}": 1, f"{ports[1]}->{ports[0]}": 1}
    assert cap.contains(MARKER) == 1
    # each datagram was seen leaving and arriving; one copy stored
    assert report["incoming_copies"] == 2 and report["stored"] == 2
    # the kernel filter passed the link's four sightings and none of the strangers'
    assert report["kernel_packets"] == 4
    assert report["complete"] and report["kernel_drops"] == 0
    assert [frame for _, _, _, frame in cap.frames] == sent

    path = tmp_path / "link.pcap"
    assert cap.write_pcap(str(path)) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header, records = read_pcap(path.read_bytes())
    assert header[0] == 0xA1B2C3D4 and header[6] == 1
    assert [r[2] for r in records] == sent
    assert cap.started_at <= records[0][0] + 1 and records[0][0] <= cap.stopped_at


def test_pcap_opens_in_tcpdump(link, tmp_path):
    need_root()
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump is not installed (apt-get install tcpdump): the pcap is checked by hand only")
    (left, right), ports = link
    with Capture(ports=ports) as cap:
        send(left, right, esp(0x5EC0DE42))
        send(right, left, icmp(MARKER))
        send(left, right, arp())
    path = tmp_path / "link.pcap"
    cap.write_pcap(str(path))
    done = subprocess.run([tcpdump, "-nn", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "link-type EN10MB (Ethernet)" in done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    assert "192.0.2.11 > 192.0.2.22: ESP(spi=0x5ec0de42,seq=0x1)" in lines[0]
    assert "192.0.2.11 > 192.0.2.22: ICMP echo request" in lines[1]
    assert "ARP" in lines[2] and "who-has 192.0.2.22 tell 192.0.2.11" in lines[2]


def test_cli_writes_an_empty_summary_and_pcap(link, tmp_path):
    need_root()
    _, ports = link
    path = tmp_path / "quiet.pcap"
    done = subprocess.run([sys.executable, "-m", "vmlab.capture", "--seconds", "0.2", "--ports",
                           f"{ports[0]},{ports[1]}", "--marker", "nothing", "--pcap", str(path), "--json"],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(capture.__file__)))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["frames"] == 0 and report["marker"] == 0 and report["ports"] == list(ports)
    assert report["pcap"] == str(path) and report["complete"]
    assert path.read_bytes() == pcap_bytes([])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("args, message", [
    (["--seconds", "0"], "--seconds 0.0: expected a duration in 0..86400"),
    (["--seconds", "1", "--ports", "22511,70000"], "--ports '22511,70000'"),
])
def test_cli_names_bad_arguments(args, message):
    done = subprocess.run([sys.executable, "-m", "vmlab.capture", *args], capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(capture.__file__)))
    assert done.returncode == 2 and message in done.stderr
