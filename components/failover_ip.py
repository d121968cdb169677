"""The failover IP. Where OVH routes it now is read from the OVH API (components/ovh)."""
from dataclasses import dataclass
from typing import Optional

import pulumi


@dataclass(frozen=True)
class FailoverIpArgs:
    spec: object  # components.spec.ClusterSpec


class FailoverIp(pulumi.ComponentResource):
    def __init__(self, name: str, args: FailoverIpArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:failover:FailoverIp", name, None, opts)
        spec = args.spec
        fip = spec.failover_ip
        initial = next(n for n in spec.nodes if n.name == fip.initial_node)
        self.address = fip.address
        self.initial_node = fip.initial_node
        # Until the OVH routing resource reads it back, the declared placement is all that is known.
        self.routed_to = pulumi.Output.from_input(initial.service)
        self.active_node = pulumi.Output.from_input(initial.name)
        self.register_outputs({"address": self.address, "routedTo": self.routed_to, "activeNode": self.active_node})
