"""The IPsec link between the two servers: one SA per direction, keys generated unless given."""
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi

from components.generated_secret import GeneratedSecret
from components.remote.resources import RemoteFile, XfrmSet
from components.render import boot
from components.render import ipsec as render


@dataclass(frozen=True)
class IpsecLinkArgs:
    spec: object                                         # components.spec.ClusterSpec
    keys: Mapping[str, pulumi.Output] = field(default_factory=dict)  # per node: the SA towards it
    nodes: Mapping[str, object] = field(default_factory=dict)        # name -> components.node.Node


class IpsecLink(pulumi.ComponentResource):
    """Per node, the xfrm commands (as `ip -batch` text, secret: it carries the keys) and the SPIs in use."""

    xfrm: Mapping[str, pulumi.Output]
    spis: Mapping[str, str]  # hex, as `ip xfrm state` prints them

    def __init__(self, name: str, args: IpsecLinkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:ipsec:IpsecLink", name, None, opts)
        spec = args.spec
        ipsec = spec.ipsec
        keys = {}
        for node in spec.nodes:
            given = args.keys.get(node.name)
            if given is None:
                given = GeneratedSecret(f"{name}-key-{node.name}", length=render.key_bytes(ipsec),
                                        epoch=ipsec.key_epoch, opts=pulumi.ResourceOptions(parent=self)).value
            keys[node.name] = pulumi.Output.secret(given)
        self.spis = {node.name: f"0x{ipsec.spis[node.name]:08x}" for node in spec.nodes}
        all_keys = pulumi.Output.all(**keys)
        self.xfrm = {
            node.name: pulumi.Output.secret(all_keys.apply(lambda k, n=node.name: render.xfrm_batch(spec, n, k)))
            for node in spec.nodes
        }
        for node_name, node in args.nodes.items():
            commands = render.xfrm_commands(spec, node_name)
            tokens = sorted({w for argv in commands for w in argv if w.startswith("@") and w.endswith("@")})
            fills = all_keys.apply(lambda k, t=tokens: {tok: render.fill_keys(ipsec, tok, k) for tok in t})
            XfrmSet(f"{name}-{node_name}-xfrm", node, commands, fills,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=node.ready))
            # the same SAs and policies for the node's next boot (components/boot.py loads them)
            here = pulumi.ResourceOptions(parent=self, depends_on=node.ready)
            RemoteFile(f"{name}-{node_name}-xfrm-file", node, boot.XFRM_PATH, self.xfrm[node_name], mode="0600",
                       secret=True, opts=here)
            RemoteFile(f"{name}-{node_name}-xfrm-delete-file", node, boot.XFRM_DELETE_PATH,
                       render.xfrm_delete_batch(spec, node_name), mode="0600", opts=here)
        self.register_outputs({"spis": self.spis, "xfrm": self.xfrm})
