"""The replicated disk: one DRBD resource mirrored between the two servers."""
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi

from components.remote.resources import DrbdDisk, RemoteFile, Service
from components.render import drbd as render


@dataclass(frozen=True)
class DrbdResourceArgs:
    spec: object  # components.spec.ClusterSpec
    nodes: Mapping[str, object] = field(default_factory=dict)   # name -> components.node.Node


class DrbdResource(pulumi.ComponentResource):
    def __init__(self, name: str, args: DrbdResourceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:drbd:DrbdResource", name, None, opts)
        drbd = args.spec.drbd
        self.resource = drbd.resource
        self.device = drbd.device
        self.mount_point = drbd.mount_point
        self.config = pulumi.Output.from_input(render.resource_file(args.spec))
        # Per node: the configuration, then the resource itself (metadata once, up, first sync, filesystem).
        self.state: dict = {}
        initial = drbd.initial_primary or args.spec.failover_ip.initial_node
        for node_name, node in args.nodes.items():
            here = pulumi.ResourceOptions(parent=self, depends_on=node.ready)
            files = [RemoteFile(f"{name}-{node_name}-global", node, render.GLOBAL_COMMON_PATH,
                                render.global_common(), opts=here),
                     RemoteFile(f"{name}-{node_name}-resource", node, render.resource_path(args.spec), self.config,
                                opts=here)]
            disk = DrbdDisk(f"{name}-{node_name}-disk", node, drbd.resource, drbd.device,
                            initial_primary=node_name == initial, fs_type=drbd.fs_type,
                            opts=pulumi.ResourceOptions(parent=self, depends_on=files))
            self.state[node_name] = disk.observed
            # After a reboot DRBD must be up and connected before Heartbeat starts (its unit is ordered after
            # drbd.service): drbddisk only switches roles. Kept on destroy: stopping it would take DRBD down.
            Service(f"{name}-{node_name}-boot", node, "drbd", running=True, enabled=True, stop_on_delete=False,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[disk]))
        self.register_outputs({"resource": self.resource, "device": self.device, "mountPoint": self.mount_point,
                               "config": self.config})
