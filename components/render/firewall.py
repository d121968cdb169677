"""nftables ruleset per node, in its own table `inet ovh_ha`.

The file loads atomically with `nft -f`: it declares the table, deletes it and recreates it in one
transaction, so a reload never leaves the server without rules and never keeps stale ones. Other tables
(Debian's /etc/nftables.conf) are left alone; a packet dropped here stays dropped whatever they say.
"""
from typing import List

from components.render import MANAGED
from components.spec import ClusterSpec

TABLE = "inet ovh_ha"
_ICMP = "destination-unreachable, time-exceeded, parameter-problem, echo-request"
_ICMPV6 = ("destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, "
           "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert")


def _ports(ports) -> str:
    ports = sorted(set(ports))
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, ports)) + " }"


def ruleset(spec: ClusterSpec, node_name: str) -> str:
    """Input policy drop; in: loopback, replies, the peer's ESP, Heartbeat and DRBD from the peer only (and
    only once decrypted, `meta secpath exists`, when IPsec is on), SSH, essential ICMP, the extra ports.

    `nft list` prints `meta secpath exists` back as `meta ipsec exists`."""
    node, peer = spec.node(node_name), spec.peer(node_name)
    ipsec = spec.ipsec.enabled
    via_ipsec = " meta secpath exists" if ipsec else ""
    rules: List[str] = ['iif "lo" accept', "ct state invalid drop"]
    if ipsec:
        rules.append(f"ip saddr {peer.address} ip protocol esp accept")
    rules.append(f"ip saddr {peer.address} udp dport {spec.heartbeat.udp_port}{via_ipsec} accept")
    if spec.drbd.enabled:
        rules.append(f"ip saddr {peer.address} tcp dport {spec.drbd.port}{via_ipsec} accept")
    rules += ["ct state established,related accept",
              f"tcp dport {_ports([22, node.ssh.port])} accept",
              f"icmp type {{ {_ICMP} }} accept",
              f"icmpv6 type {{ {_ICMPV6} }} accept"]
    fw = spec.firewall
    if fw.extra_tcp_ports:
        rules.append(f"tcp dport {_ports(fw.extra_tcp_ports)} accept")
    if fw.extra_udp_ports:
        rules.append(f"udp dport {_ports(fw.extra_udp_ports)} accept")
    body = "\n".join(f"\t\t{rule}" for rule in rules)
    return (f"#!/usr/sbin/nft -f\n# nftables for {node.name}, {MANAGED}\n"
            f"table {TABLE}\ndelete table {TABLE}\n"
            f"table {TABLE} {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy drop;\n"
            f"{body}\n\t}}\n}}\n")


def teardown() -> str:
    """`nft -f` input that removes the table (and only it), whether or not it exists."""
    return f"table {TABLE}\ndelete table {TABLE}\n"
