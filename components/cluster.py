"""HaCluster: the whole two-node cluster, wired in the order a sysadmin would build it by hand."""
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

import pulumi

from components.alerts import Alerts, AlertsArgs
from components.drbd import DrbdResource, DrbdResourceArgs
from components.failover_ip import FailoverIp, FailoverIpArgs
from components.firewall import Firewall, FirewallArgs
from components.heartbeat import HeartbeatGroup, HeartbeatGroupArgs
from components.ipsec import IpsecLink, IpsecLinkArgs
from components.node import Node, NodeArgs


@dataclass(frozen=True)
class ClusterSecrets:
    """Secret inputs the operator gave (already secret Outputs); anything absent is generated."""

    heartbeat_authkey: Optional[pulumi.Output] = None
    ipsec_keys: Mapping[str, pulumi.Output] = field(default_factory=dict)


@dataclass(frozen=True)
class HaClusterArgs:
    spec: object  # components.spec.ClusterSpec
    secrets: ClusterSecrets = field(default_factory=ClusterSecrets)


class HaCluster(pulumi.ComponentResource):
    """Nodes first; then the encrypted link; the firewall that relies on it; the replicated disk over it;
    the failover IP and its node agent; the alerts; and Heartbeat last, once everything it moves exists."""

    def __init__(self, name: str, args: HaClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:cluster:HaCluster", name, None, opts)
        spec = args.spec

        def child(*after):
            return pulumi.ResourceOptions(parent=self, depends_on=[r for r in after if r is not None])

        self.nodes: Dict[str, Node] = {n.name: Node(n.name, NodeArgs(spec=n), child()) for n in spec.nodes}
        nodes = list(self.nodes.values())
        self.ipsec = (IpsecLink(f"{name}-ipsec", IpsecLinkArgs(spec=spec, keys=args.secrets.ipsec_keys), child(*nodes))
                      if spec.ipsec.enabled else None)
        self.firewall = (Firewall(f"{name}-firewall", FirewallArgs(spec=spec), child(*nodes, self.ipsec))
                         if spec.firewall.enabled else None)
        self.drbd = (DrbdResource(f"{name}-drbd", DrbdResourceArgs(spec=spec), child(*nodes, self.ipsec))
                     if spec.drbd.enabled else None)
        self.failover_ip = FailoverIp(f"{name}-failover-ip", FailoverIpArgs(spec=spec), child(*nodes))
        self.alerts = Alerts(f"{name}-alerts", AlertsArgs(spec=spec), child(*nodes))
        self.heartbeat = HeartbeatGroup(
            f"{name}-heartbeat", HeartbeatGroupArgs(spec=spec, authkey=args.secrets.heartbeat_authkey),
            child(*nodes, self.ipsec, self.firewall, self.drbd, self.failover_ip, self.alerts))
        self.outputs = self._outputs(spec)
        self.register_outputs(self.outputs)

    def _outputs(self, spec) -> Dict[str, object]:
        """Stack outputs, camelCase. Per-node DRBD and Heartbeat state are read from the servers by the
        remote layer; until a value has been read it is None, never a guess."""
        return {
            "failoverIp": self.failover_ip.address,
            "routedTo": self.failover_ip.routed_to,
            "activeNode": self.failover_ip.active_node,
            "nodes": {
                name: {
                    "service": node.service,
                    "address": node.address,
                    "drbdRole": None,
                    "drbdDiskState": None,
                    "heartbeatRunning": None,
                }
                for name, node in self.nodes.items()
            },
            "drbd": ({"resource": self.drbd.resource, "device": self.drbd.device,
                      "mountPoint": self.drbd.mount_point} if self.drbd else None),
            "ipsecSpis": self.ipsec.spis if self.ipsec else {},
        }
