"""Heartbeat: ha.cf per node, the shared authkeys, the resource group it moves, and the daemon itself."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import pulumi

from components.generated_secret import GeneratedSecret
from components.remote.resources import HEARTBEAT_PIDFILE, Applied, HandOver, RemoteFile, Service
from components.render import agent, clustermsg
from components.render import heartbeat as render

AGENT_SCRIPT = Path(__file__).resolve().parents[1] / "node" / agent.NAME
TAKEOVER = "/usr/share/heartbeat/hb_takeover all"
HAND_OVER_TIMEOUT = 360.0  # Heartbeat's release on the peer, then the OVH move (about a minute) and the start


@dataclass(frozen=True)
class HeartbeatGroupArgs:
    spec: object                             # components.spec.ClusterSpec
    nodes: Mapping[str, object] = field(default_factory=dict)   # name -> components.node.Node
    authkey: Optional[pulumi.Output] = None  # the operator's secret; generated when None
    agent_credentials: Optional[pulumi.Output] = None   # secret ovh.conf text for the node agent


class HeartbeatGroup(pulumi.ComponentResource):
    """Files first, then the daemon on each node, restarted when one of its files changed."""

    ha_cf: Mapping[str, pulumi.Output]
    authkeys: pulumi.Output
    haresources: Mapping[str, pulumi.Output]

    def __init__(self, name: str, args: HeartbeatGroupArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:heartbeat:HeartbeatGroup", name, None, opts)
        spec = args.spec
        key = args.authkey
        if key is None:
            key = GeneratedSecret(f"{name}-authkey", length=32, opts=pulumi.ResourceOptions(parent=self)).value
        self.authkeys = pulumi.Output.secret(key).apply(render.authkeys)
        self.ha_cf = {n.name: pulumi.Output.from_input(render.ha_cf(spec, n.name)) for n in spec.nodes}
        # Per node: the failover-IP resource names the node's own interface, which may differ.
        self.haresources = {n.name: pulumi.Output.from_input(render.haresources(spec, n.name)) for n in spec.nodes}
        self.running: dict = {}
        script = AGENT_SCRIPT.read_text()
        previous: list = []
        for node_name, node in args.nodes.items():
            here = pulumi.ResourceOptions(parent=self, depends_on=node.ready)
            files = [
                RemoteFile(f"{name}-{node_name}-ha-cf", node, render.HA_CF_PATH, self.ha_cf[node_name], opts=here),
                RemoteFile(f"{name}-{node_name}-authkeys", node, render.AUTHKEYS_PATH, self.authkeys, mode="0600",
                           secret=True, opts=here),
                RemoteFile(f"{name}-{node_name}-haresources", node, render.HARESOURCES_PATH,
                           self.haresources[node_name], opts=here),
                RemoteFile(f"{name}-{node_name}-agent", node, agent.SCRIPT_PATH, script, mode="0755", opts=here),
                RemoteFile(f"{name}-{node_name}-agent-config", node, agent.CONFIG_PATH,
                           agent.config_file(spec, node_name), opts=here),
            ]
            # Heartbeat's scripts send their messages whole (components/render/clustermsg.py says why)
            files.append(Applied(f"{name}-{node_name}-clustermsg", node, "Heartbeat cluster messages sent whole",
                                 apply=clustermsg.install_command(), probe=clustermsg.PROBE,
                                 remove=clustermsg.REMOVE, opts=here))
            if args.agent_credentials is not None:
                files.append(RemoteFile(f"{name}-{node_name}-agent-credentials", node, agent.CREDENTIALS_PATH,
                                        args.agent_credentials, mode="0600", secret=True, opts=here))
            # ha.cf and authkeys: `reload` (Heartbeat restarts keeping its resources); haresources: restart.
            # One node after the other, so a configuration change never stops both at once.
            daemon = Service(f"{name}-{node_name}-heartbeat", node, "heartbeat", running=True, enabled=True,
                             reload_on=[files[0].sha256, files[1].sha256], restart_on=[files[2].sha256],
                             pidfile=HEARTBEAT_PIDFILE,
                             opts=pulumi.ResourceOptions(parent=self, depends_on=files + previous))
            previous = [daemon]
            self.running[node_name] = daemon.observed.apply(lambda o: bool(o and o.get("running")))
        # The preferred node (failoverIp.initialNode): where failBack brings the group back, through Heartbeat.
        home = spec.failover_ip.initial_node
        if home in args.nodes:
            self.hand_over = HandOver(f"{name}-{home}-hand-over", args.nodes[home], script=agent.SCRIPT_PATH,
                                      ip=spec.failover_ip.cidr, interface=spec.node(home).interface,
                                      takeover=TAKEOVER, fail_back=spec.failover_ip.fail_back,
                                      timeout=HAND_OVER_TIMEOUT,
                                      opts=pulumi.ResourceOptions(parent=self, depends_on=previous))
        self.register_outputs({"haCf": self.ha_cf, "authkeys": self.authkeys, "haresources": self.haresources})
