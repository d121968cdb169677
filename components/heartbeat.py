"""Heartbeat: ha.cf per node, the shared authkeys, and the resource group it moves."""
from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi

from components.generated_secret import GeneratedSecret
from components.render import heartbeat as render


@dataclass(frozen=True)
class HeartbeatGroupArgs:
    spec: object                           # components.spec.ClusterSpec
    authkey: Optional[pulumi.Output] = None  # the operator's secret; generated when None


class HeartbeatGroup(pulumi.ComponentResource):
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
        self.register_outputs({"haCf": self.ha_cf, "authkeys": self.authkeys, "haresources": self.haresources})
