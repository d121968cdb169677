"""The replicated disk: one DRBD resource mirrored between the two servers."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.render import drbd as render


@dataclass(frozen=True)
class DrbdResourceArgs:
    spec: object  # components.spec.ClusterSpec


class DrbdResource(pulumi.ComponentResource):
    def __init__(self, name: str, args: DrbdResourceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:drbd:DrbdResource", name, None, opts)
        drbd = args.spec.drbd
        self.resource = drbd.resource
        self.device = drbd.device
        self.mount_point = drbd.mount_point
        self.config = pulumi.Output.from_input(render.resource_file(args.spec))
        self.register_outputs({"resource": self.resource, "device": self.device, "mountPoint": self.mount_point,
                               "config": self.config})
