"""HaCluster: the whole two-node cluster, wired in the order a sysadmin would build it by hand."""
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

import pulumi

from components.alerts import Alerts, AlertsArgs
from components.boot import NetworkAtBoot, NetworkAtBootArgs
from components.drbd import DrbdResource, DrbdResourceArgs
from components.failover_ip import FailoverIp, FailoverIpArgs
from components.firewall import Firewall, FirewallArgs
from components.heartbeat import HeartbeatGroup, HeartbeatGroupArgs
from components.ipsec import IpsecLink, IpsecLinkArgs
from components.node import BASE_PACKAGES, Node, NodeArgs


@dataclass(frozen=True)
class ClusterSecrets:
    """Secret inputs the operator gave (already secret Outputs); anything absent is generated."""

    heartbeat_authkey: Optional[pulumi.Output] = None
    ipsec_keys: Mapping[str, pulumi.Output] = field(default_factory=dict)
    ssh_private_key: Optional[pulumi.Output] = None
    agent_credentials: Optional[pulumi.Output] = None   # ovh.conf text for the node agent
    ovh_credentials: Optional[pulumi.Output] = None     # {applicationKey, applicationSecret, consumerKey}


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

        secrets = args.secrets
        packages = BASE_PACKAGES + (("drbd-utils",) if spec.drbd.enabled else ())
        self.nodes: Dict[str, Node] = {
            n.name: Node(n.name, NodeArgs(spec=n, ssh_key_file=spec.ssh_key_file,
                                          ssh_private_key=secrets.ssh_private_key, packages=packages), child())
            for n in spec.nodes}
        nodes = list(self.nodes.values())
        by_name = self.nodes
        self.ipsec = (IpsecLink(f"{name}-ipsec", IpsecLinkArgs(spec=spec, keys=secrets.ipsec_keys, nodes=by_name),
                                child(*nodes)) if spec.ipsec.enabled else None)
        self.firewall = (Firewall(f"{name}-firewall", FirewallArgs(spec=spec, nodes=by_name), child(*nodes, self.ipsec))
                         if spec.firewall.enabled else None)
        # after a reboot the SAs and the firewall come back before DRBD and Heartbeat start
        self.boot = (NetworkAtBoot(f"{name}-boot", NetworkAtBootArgs(nodes=by_name), child(self.ipsec, self.firewall))
                     if self.ipsec or self.firewall else None)
        self.drbd = (DrbdResource(f"{name}-drbd", DrbdResourceArgs(spec=spec, nodes=by_name), child(*nodes, self.ipsec))
                     if spec.drbd.enabled else None)
        self.failover_ip = FailoverIp(f"{name}-failover-ip", FailoverIpArgs(spec=spec, credentials=secrets.ovh_credentials),
                                      child(*nodes))
        self.alerts = Alerts(f"{name}-alerts", AlertsArgs(spec=spec), child(*nodes))
        self.heartbeat = HeartbeatGroup(
            f"{name}-heartbeat", HeartbeatGroupArgs(spec=spec, nodes=by_name, authkey=secrets.heartbeat_authkey,
                                                  agent_credentials=secrets.agent_credentials),
            child(*nodes, self.ipsec, self.firewall, self.boot, self.drbd, self.failover_ip, self.alerts))
        self.outputs = self._outputs(spec)
        self.register_outputs(self.outputs)

    def _primaries(self) -> pulumi.Output:
        names = list(self.drbd.state)
        return pulumi.Output.all(*(self.drbd.state[n] for n in names)).apply(
            lambda states: [n for n, o in zip(names, states) if (o or {}).get("role") == "Primary"])

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
                    "drbdRole": (self.drbd.state[name].apply(lambda o: (o or {}).get("role"))
                                 if self.drbd else None),
                    "drbdDiskState": (self.drbd.state[name].apply(lambda o: (o or {}).get("disk"))
                                      if self.drbd else None),
                    "drbdConnection": (self.drbd.state[name].apply(lambda o: (o or {}).get("cstate"))
                                       if self.drbd else None),
                    # DRBD met data written on both sides while apart and dropped the connection (README,
                    # "Split brain"): only an operator can say whose writes to keep
                    "drbdSplitBrain": (self.drbd.state[name].apply(lambda o: (o or {}).get("splitBrain"))
                                       if self.drbd else None),
                    "heartbeatRunning": self.heartbeat.running.get(name),
                }
                for name, node in self.nodes.items()
            },
            "drbd": ({"resource": self.drbd.resource, "device": self.drbd.device,
                      "mountPoint": self.drbd.mount_point,
                      # two names here is a split brain in progress: both nodes accept writes
                      "primaries": self._primaries()} if self.drbd else None),
            "ipsecSpis": self.ipsec.spis if self.ipsec else {},
        }
