"""The replicated disk: one DRBD resource mirrored between the two servers."""
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi

from components.remote.resources import RemoteFile
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
        # The configuration files. Metadata, role and sync are the DRBD runtime resource's (VM lab issue).
        for node_name, node in args.nodes.items():
            here = pulumi.ResourceOptions(parent=self, depends_on=node.ready)
            RemoteFile(f"{name}-{node_name}-global", node, render.GLOBAL_COMMON_PATH, render.global_common(),
                       opts=here)
            RemoteFile(f"{name}-{node_name}-resource", node, render.resource_path(args.spec), self.config,
                       opts=here)
        self.register_outputs({"resource": self.resource, "device": self.device, "mountPoint": self.mount_point,
                               "config": self.config})
