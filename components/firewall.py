"""nftables on each server: only the peer gets in, and only through IPsec when it is on."""
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi

from components.remote.resources import Applied, RemoteFile
from components.render import boot
from components.render import firewall as render

RULESET_PATH = boot.NFT_PATH      # also what the node loads at boot


@dataclass(frozen=True)
class FirewallArgs:
    spec: object  # components.spec.ClusterSpec
    nodes: Mapping[str, object] = field(default_factory=dict)   # name -> components.node.Node


class Firewall(pulumi.ComponentResource):
    """Per node: the ruleset file, and the table loaded from it. The loaded table is compared with what the
    kernel listed right after loading it, so a rule added or deleted by hand shows in `pulumi refresh`."""

    def __init__(self, name: str, args: FirewallArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:firewall:Firewall", name, None, opts)
        spec = args.spec
        self.rulesets = {n.name: pulumi.Output.from_input(render.ruleset(spec, n.name)) for n in spec.nodes}
        for node_name, node in args.nodes.items():
            here = pulumi.ResourceOptions(parent=self, depends_on=node.ready)
            ruleset = RemoteFile(f"{name}-{node_name}-ruleset", node, RULESET_PATH, self.rulesets[node_name],
                                 opts=here)
            Applied(f"{name}-{node_name}-table", node, f"nft table {render.TABLE}",
                    apply=f"nft -f {RULESET_PATH}", probe=f"nft list table {render.TABLE}",
                    remove=f"nft list table {render.TABLE} >/dev/null 2>&1 && nft delete table {render.TABLE}; true",
                    triggers=[ruleset.sha256], opts=pulumi.ResourceOptions(parent=self, depends_on=[ruleset]))
        self.register_outputs({"rulesets": self.rulesets})
