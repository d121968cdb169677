"""The node's network security at boot: the IPsec SAs and the firewall loaded before DRBD and Heartbeat start
(components/render/boot.py says why)."""
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi

from components.remote.resources import Applied, RemoteFile
from components.render import boot as render


@dataclass(frozen=True)
class NetworkAtBootArgs:
    nodes: Mapping[str, object] = field(default_factory=dict)    # name -> components.node.Node


class NetworkAtBoot(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkAtBootArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:boot:NetworkAtBoot", name, None, opts)
        for node_name, node in args.nodes.items():
            here = pulumi.ResourceOptions(parent=self, depends_on=node.ready)
            files = [RemoteFile(f"{name}-{node_name}-script", node, render.SCRIPT_PATH, render.init_script(),
                                mode="0755", opts=here),
                     RemoteFile(f"{name}-{node_name}-unit", node, render.UNIT_PATH, render.unit(), opts=here)]
            Applied(f"{name}-{node_name}-enabled", node, f"{render.NAME} at boot", apply=render.ENABLE,
                    probe=render.PROBE, remove=render.DISABLE, triggers=[f.sha256 for f in files],
                    opts=pulumi.ResourceOptions(parent=self, depends_on=files))
        self.register_outputs({})
