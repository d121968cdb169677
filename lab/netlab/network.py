"""The lab network: named network namespaces, a bridge in OUTSIDE, one veth per host, addresses and routes.

Every step reads the current state first (`ip -j`) and changes only what differs, so `up` is idempotent and
repairs a half-built network left by a crash.
"""
import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Callable, List

from lab.netlab import topology as topo

NETNS_DIR = Path("/run/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def ip_json(*args: str) -> list:
    out = ip("-j", *args).stdout.strip()
    return json.loads(out) if out else []


# OUTSIDE finds an on-link failover IP by ARP. When the IP moves to the other host, a cached entry would keep
# pointing at the old host for up to ~30 s; these make OUTSIDE re-resolve within about a second, and accept
# the gratuitous ARP that Heartbeat's IPaddr sends so that the switch is immediate.
OUTSIDE_SYSCTLS = {
    f"net.ipv4.neigh.{topo.BRIDGE}.base_reachable_time_ms": "500",
    f"net.ipv4.neigh.{topo.BRIDGE}.delay_first_probe_time": "0",
    f"net.ipv4.neigh.{topo.BRIDGE}.ucast_solicit": "0",
    f"net.ipv4.neigh.{topo.BRIDGE}.retrans_time_ms": "100",
    f"net.ipv4.conf.{topo.BRIDGE}.arp_accept": "1",
}


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def lab_netns() -> List[str]:
    return [topo.OUTSIDE] + [h.name for h in topo.HOSTS]


class Network:
    """Applies the topology; `changes` lists what it did."""

    def __init__(self, record, say: Callable[[str], None]):
        self.record = record
        self.say = say
        self.changes: List[str] = []

    def _changed(self, what: str) -> None:
        self.changes.append(what)
        self.say(what)

    def foreign_namespaces(self) -> List[str]:
        """Lab namespace names that exist but that this state dir never created."""
        return [name for name in lab_netns() if netns_exists(name) and name not in self.record.netns]

    def ensure(self) -> List[str]:
        for name in lab_netns():
            self._netns(name)
        self._link_up(topo.OUTSIDE, "lo")
        self._bridge()
        self._address(topo.OUTSIDE, topo.BRIDGE, f"{topo.GATEWAY}/{topo.PREFIX}")
        self._route(topo.OUTSIDE, topo.FAILOVER_NETWORK, ["dev", topo.BRIDGE, "scope", "link"])
        self._sysctls(topo.OUTSIDE, OUTSIDE_SYSCTLS)
        for host in topo.HOSTS:
            self._link_up(host.name, "lo")
            self._veth(host)
            self._address(host.name, topo.HOST_INTERFACE, f"{host.address}/{topo.PREFIX}")
            self._link_up(host.name, topo.HOST_INTERFACE)
            self._route(host.name, "default", ["via", topo.GATEWAY, "dev", topo.HOST_INTERFACE])
        return self.changes

    def _netns(self, name: str) -> None:
        if netns_exists(name):
            return
        self.record.add_netns(name)
        ip("netns", "add", name)
        # no router advertisements or DAD noise on the lab links
        for key in ("net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"):
            ip("netns", "exec", name, "sysctl", "-q", "-w", key, check=False)
        self._changed(f"created network namespace {name}")

    def _links(self, ns: str) -> dict:
        return {link["ifname"]: link for link in ip_json("-n", ns, "link", "show")}

    def _link_up(self, ns: str, dev: str) -> None:
        link = self._links(ns).get(dev)
        if link is None:
            raise RuntimeError(f"{ns}: no interface {dev}")
        if "UP" not in link.get("flags", []):
            ip("-n", ns, "link", "set", dev, "up")
            if dev != "lo":
                self._changed(f"{ns}: {dev} up")

    def _bridge(self) -> None:
        link = self._links(topo.OUTSIDE).get(topo.BRIDGE)
        if link is None:
            ip("-n", topo.OUTSIDE, "link", "add", topo.BRIDGE, "type", "bridge", "forward_delay", "0",
               "stp_state", "0")
            ip("-n", topo.OUTSIDE, "link", "set", topo.BRIDGE, "alias", topo.LAB_MARK)
            self._changed(f"{topo.OUTSIDE}: bridge {topo.BRIDGE}")
        self._link_up(topo.OUTSIDE, topo.BRIDGE)

    def _veth(self, host: topo.Host) -> None:
        inside = self._links(host.name).get(topo.HOST_INTERFACE)
        port = self._links(topo.OUTSIDE).get(host.bridge_port)
        if inside is None or port is None:
            for ns, dev, link in ((host.name, topo.HOST_INTERFACE, inside), (topo.OUTSIDE, host.bridge_port, port)):
                if link is not None:
                    ip("-n", ns, "link", "del", dev)
            ip("-n", topo.OUTSIDE, "link", "add", host.bridge_port, "type", "veth",
               "peer", "name", topo.HOST_INTERFACE, "netns", host.name)
            self._changed(f"{host.name}: veth {topo.HOST_INTERFACE} <-> {topo.OUTSIDE}/{host.bridge_port}")
            port = self._links(topo.OUTSIDE)[host.bridge_port]
        if port.get("master") != topo.BRIDGE:
            ip("-n", topo.OUTSIDE, "link", "set", host.bridge_port, "master", topo.BRIDGE)
        self._link_up(topo.OUTSIDE, host.bridge_port)

    def _address(self, ns: str, dev: str, cidr: str) -> None:
        local, prefix = cidr.split("/")
        for entry in ip_json("-n", ns, "addr", "show", "dev", dev):
            for info in entry.get("addr_info", []):
                if info.get("local") == local and str(info.get("prefixlen")) == prefix:
                    return
        ip("-n", ns, "addr", "add", cidr, "dev", dev)
        self._changed(f"{ns}: {cidr} on {dev}")

    def _sysctls(self, ns: str, wanted: dict) -> None:
        keys = list(wanted)
        current = subprocess.run(["nsenter", f"--net={NETNS_DIR / ns}", "sysctl", "-n", *keys],
                                 capture_output=True, text=True, timeout=30).stdout.split()
        differ = [k for k, value in zip(keys, current + [""] * len(keys)) if value != wanted[k]]
        if differ:
            subprocess.run(["nsenter", f"--net={NETNS_DIR / ns}", "sysctl", "-q", "-w",
                            *[f"{k}={wanted[k]}" for k in differ]], check=True, capture_output=True, timeout=30)
            self._changed(f"{ns}: {len(differ)} neighbour/ARP setting(s) for fast failover")

    def _route(self, ns: str, dst: str, spec: List[str]) -> None:
        routes = ip_json("-n", ns, "route", "show", "exact", dst)
        wanted_dev = spec[spec.index("dev") + 1]
        wanted_via = spec[spec.index("via") + 1] if "via" in spec else None
        for route in routes:
            if route.get("dev") == wanted_dev and route.get("gateway") == wanted_via:
                return
        ip("-n", ns, "route", "replace", dst, *spec)
        self._changed(f"{ns}: route {dst} {' '.join(spec)}")

    def route_failover(self, address: str, via: str) -> str:
        """Route one failover IP the way OVH does, to a host's main IP (via = host name), or back on-link
        (via = "on-link"). The more specific /32 wins over the on-link FAILOVER_NETWORK route."""
        try:
            ip_address = ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"route: {address!r} is not an IPv4 address; expected one in {topo.FAILOVER_NETWORK}")
        if ip_address not in ipaddress.ip_network(topo.FAILOVER_NETWORK):
            raise ValueError(f"route: {address} is outside the lab's failover network {topo.FAILOVER_NETWORK}")
        if not netns_exists(topo.OUTSIDE):
            raise ValueError(f"route: network namespace {topo.OUTSIDE} does not exist; run `lab/lab.py up`")
        if via == "on-link":
            ip("-n", topo.OUTSIDE, "route", "del", f"{address}/32", check=False)
            return f"{address} on-link (whichever host answers ARP for it)"
        try:
            target = topo.host(via)
        except KeyError:
            names = ", ".join([h.name for h in topo.HOSTS] + ["on-link"])
            raise ValueError(f"route: unknown target {via!r}; expected one of {names}")
        ip("-n", topo.OUTSIDE, "route", "replace", f"{address}/32", "via", target.address, "dev", topo.BRIDGE)
        return f"{address} routed to {target.name} ({target.address})"

    def failover_routes(self) -> List[str]:
        return [f"{r['dst']} via {r['gateway']}" for r in ip_json("-n", topo.OUTSIDE, "route", "show")
                if r.get("gateway") and r.get("dst", "").count(".") == 3 and r["dst"] != "default"]

    def teardown(self) -> List[str]:
        """Delete the namespaces this state dir created (the veths and the bridge go with them)."""
        removed = []
        for name in reversed(lab_netns()):
            if name not in self.record.netns:
                continue
            if netns_exists(name):
                ip("netns", "del", name)
                removed.append(name)
            self.record.drop_netns(name)
        return removed
