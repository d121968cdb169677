"""nftables on each server: only the peer gets in, and only through IPsec when it is on."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.render import firewall as render


@dataclass(frozen=True)
class FirewallArgs:
    spec: object  # components.spec.ClusterSpec


class Firewall(pulumi.ComponentResource):
    def __init__(self, name: str, args: FirewallArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:firewall:Firewall", name, None, opts)
        spec = args.spec
        self.rulesets = {n.name: pulumi.Output.from_input(render.ruleset(spec, n.name)) for n in spec.nodes}
        self.register_outputs({"rulesets": self.rulesets})
