"""A server of the cluster. Later layers hang its SSH connection, facts and packages here."""
from dataclasses import dataclass
from typing import Optional

import pulumi


@dataclass(frozen=True)
class NodeArgs:
    spec: object  # components.spec.NodeSpec


class Node(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:node:Node", name, None, opts)
        spec = args.spec
        self.node_name = pulumi.Output.from_input(spec.name)
        self.service = pulumi.Output.from_input(spec.service)
        self.address = pulumi.Output.from_input(spec.address)
        self.register_outputs({"name": self.node_name, "service": self.service, "address": self.address})
