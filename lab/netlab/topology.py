"""The lab's shape: host names, documentation-range addresses, SSH ports and port forwards.

The addresses mirror Pulumi.lab.yaml (nodes 192.0.2.11/.22 on eth0, failover IP in 203.0.113.0/24). They
only exist inside the lab's network namespaces, so they never collide with the machine's own network even
when the machine itself sits in 192.0.2.0/24.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

OUTSIDE = "outside"          # network namespace playing the Internet / the OVH network
BRIDGE = "br0"               # the switch, inside OUTSIDE
NETWORK = "192.0.2.0/24"     # the hosts' network (TEST-NET-1)
PREFIX = 24
GATEWAY = "192.0.2.254"      # OUTSIDE's address on the bridge, the hosts' default route (OVH gateways end in .254)
FAILOVER_NETWORK = "203.0.113.0/24"  # TEST-NET-3: any failover IP here is on-link on the bridge from OUTSIDE
HOST_INTERFACE = "eth0"
SSH_USER = "root"
SSH_LISTEN = "127.0.0.1"     # where the machine reaches each host's sshd (a forwarder, see forward.py)
LAB_MARK = "ovh-ha-cluster netns lab"


@dataclass(frozen=True)
class Host:
    name: str        # also the netns name and what `uname -n` prints inside
    address: str     # main IP on eth0
    ssh_port: int    # SSH_LISTEN port on the machine forwarding to address:22

    @property
    def bridge_port(self) -> str:
        """The veth end inside OUTSIDE, enslaved to the bridge (<= 15 chars)."""
        return f"p-{self.name}"


HOSTS: Tuple[Host, ...] = (
    Host("ns11111", "192.0.2.11", 22111),
    Host("ns22222", "192.0.2.22", 22222),
)

OVH_API_PORT = 18080         # the lab stack's OVH API emulator (lab/ovh_emulator)
MAIL_SINK_PORT = 2525        # the lab's mail sink (lab/mail_sink), where each host's msmtp delivers
# TCP ports of services on the machine's loopback that each host also finds on its own 127.0.0.1, so the lab
# stack's endpoints (and the hosts' mail relay) work on the hosts unchanged.
DEFAULT_MACHINE_PORTS = (OVH_API_PORT, MAIL_SINK_PORT)


def host(name: str) -> Host:
    for item in HOSTS:
        if item.name == name:
            return item
    raise KeyError(name)


def machine_ports(environ: Dict[str, str] = os.environ) -> List[int]:
    """LAB_MACHINE_PORTS="18080,2525" overrides DEFAULT_MACHINE_PORTS; "" forwards nothing."""
    raw = environ.get("LAB_MACHINE_PORTS")
    if raw is None:
        return list(DEFAULT_MACHINE_PORTS)
    ports = []
    for item in raw.replace(" ", "").split(","):
        if not item:
            continue
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise ValueError(f"LAB_MACHINE_PORTS: {item!r} is not a TCP port; expected a comma-separated list "
                             "of numbers 1-65535, e.g. LAB_MACHINE_PORTS=18080,2525")
        ports.append(int(item))
    taken = {h.ssh_port for h in HOSTS} | {22}
    for port in ports:
        if port in taken:
            raise ValueError(f"LAB_MACHINE_PORTS: {port} is used by the lab itself (SSH); choose another port")
    return sorted(set(ports))
