"""Heartbeat v1 files: ha.cf (per node: it names the peer), authkeys and haresources (shared)."""
from typing import List, Optional, Sequence

from components.render import MANAGED, agent
from components.spec import DOPD, ClusterSpec, format_duration

HA_CF_PATH = "/etc/ha.d/ha.cf"
AUTHKEYS_PATH = "/etc/ha.d/authkeys"      # Heartbeat refuses to start unless it is mode 0600
HARESOURCES_PATH = "/etc/ha.d/haresources"
MAIL_SUBJECT = "ovh-ha-cluster_failover"  # one word: haresources splits fields on blanks


def ha_cf(spec: ClusterSpec, node_name: str) -> str:
    """ha.cf for `node_name`: unicast to the peer over the node's main interface.

    `udpport` precedes `ucast` because Heartbeat opens each medium with the port in force when its line is read.
    """
    hb = spec.heartbeat
    node = spec.node(node_name)
    peer = spec.peer(node_name)
    lines = [f"# {HA_CF_PATH} on {node.name}, {MANAGED}", f"logfacility {hb.log_facility}"]
    if hb.log_file:
        lines.append(f"logfile {hb.log_file}")
    lines += [
        f"keepalive {format_duration(hb.keepalive_ms)}",
        f"deadtime {format_duration(hb.deadtime_ms)}",
        f"warntime {format_duration(hb.warntime_ms)}",
        f"initdead {format_duration(hb.initdead_ms)}",
        f"udpport {hb.udp_port}",
        f"ucast {node.interface} {peer.address}",
        f"auto_failback {'on' if hb.auto_failback else 'off'}",
    ]
    lines += [f"node {n.name}" for n in spec.nodes]
    if spec.drbd.uses_dopd:
        # DRBD's fence-peer handler asks the peer, through Heartbeat, to mark its disk outdated
        lines += [f"respawn hacluster {DOPD}", "apiauth dopd gid=haclient uid=hacluster"]
    return "\n".join(lines) + "\n"


def authkeys(key: str) -> str:
    """authkeys with one sha1 key. The key is secret: callers keep the result in a secret Output."""
    if not key or any(c.isspace() for c in key):
        raise ValueError("the Heartbeat authkey must be one non-empty word")
    return f"# {AUTHKEYS_PATH}, {MANAGED}\nauth 1\n1 sha1 {key}\n"


def resource_group(spec: ClusterSpec, node_name: Optional[str] = None,
                   extra_resources: Sequence[str] = ()) -> List[str]:
    """The resources Heartbeat starts left to right (and stops right to left) on the active node: the DRBD
    primary and its filesystem, then the failover IP, then `extra_resources`, then the e-mail alert.

    Storage before the address (the tutorial had the address first): the IP is routed to a node only once
    its data is there, and a node whose DRBD refuses to become Primary never draws the traffic."""
    group = []
    drbd = spec.drbd
    if drbd.enabled:
        group.append(f"drbddisk::{drbd.resource}")
        group.append(f"Filesystem::{drbd.device}::{drbd.mount_point}::{drbd.fs_type}")
    group.append(agent.haresources_entry(spec, _interface_node(spec, node_name)))
    group += list(extra_resources)
    if spec.alerts.emails:
        group.append(f"MailTo::{','.join(spec.alerts.emails)}::{MAIL_SUBJECT}")
    return group


def haresources(spec: ClusterSpec, node_name: Optional[str] = None, extra_resources: Sequence[str] = ()) -> str:
    """haresources: the group and its preferred node (failoverIp.initialNode).

    The file is the same on both nodes unless their interfaces differ: then render it per node
    (`node_name`), since the failover IP's resource receives the local interface name.
    """
    line = " ".join([spec.failover_ip.initial_node] + resource_group(spec, node_name, extra_resources))
    return f"# {HARESOURCES_PATH}, {MANAGED}\n{line}\n"


def _interface_node(spec: ClusterSpec, node_name: Optional[str]) -> str:
    if node_name is not None:
        return node_name
    interfaces = {n.interface for n in spec.nodes}
    if len(interfaces) > 1:
        raise ValueError("the nodes use different interfaces "
                         f"({', '.join(f'{n.name}: {n.interface}' for n in spec.nodes)}): "
                         "render haresources per node with node_name")
    return spec.failover_ip.initial_node
