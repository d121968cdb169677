"""A server of the cluster: how to reach it over SSH (its host key checked), and the packages it needs."""
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi

from components.remote.resources import HostKey, PackageSet

# What the tutorial installs by hand, as Debian 12 names it. DRBD's userland only when DRBD is on.
BASE_PACKAGES = ("heartbeat", "nftables", "iproute2", "python3")


@dataclass(frozen=True)
class NodeArgs:
    spec: object                         # components.spec.NodeSpec
    ssh_key_file: Optional[str] = None   # path on the machine running Pulumi
    ssh_private_key: Optional[pulumi.Output] = None   # secret, when no key file
    packages: Sequence[str] = field(default_factory=lambda: BASE_PACKAGES)


class Node(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:node:Node", name, None, opts)
        spec = args.spec
        self.hostname = spec.name
        self.node_name = pulumi.Output.from_input(spec.name)
        self.service = pulumi.Output.from_input(spec.service)
        self.address = pulumi.Output.from_input(spec.address)
        key_file = os.path.abspath(os.path.expanduser(args.ssh_key_file)) if args.ssh_key_file else None
        self.connection = {"node": spec.name, "host": spec.ssh.host or spec.address, "port": spec.ssh.port,
                           "user": spec.ssh.user, "keyFile": key_file}
        self.ssh_private_key = args.ssh_private_key
        host_key = HostKey(f"{name}-host-key", self.connection, spec.ssh.host_key, args.ssh_private_key,
                           opts=pulumi.ResourceOptions(parent=self))
        self.host_key = host_key.hostKey
        self.host_key_fingerprint = host_key.fingerprint
        self.packages = PackageSet(f"{name}-packages", self, list(args.packages),
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=[host_key]))
        self.ready = [host_key, self.packages]
        self.register_outputs({"name": self.node_name, "service": self.service, "address": self.address,
                               "hostKeyFingerprint": self.host_key_fingerprint})
