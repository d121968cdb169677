"""The failover IP: its routing at OVH, read back from the API (components/ovh/routing.py).

`up` routes it to the declared initialNode's service at creation; `refresh` records where OVH routes it
now (after a Heartbeat takeover, the other node). Heartbeat owns runtime placement: with failBack, `up`
brings the group back through Heartbeat's own hand-over (HeartbeatGroup), and this resource only records the
routing. Removing it from the stack leaves the routing as it is.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import pulumi

from components.ovh.routing import FailoverRouting

MOVE_TIMEOUT = 300.0  # OVH takes about a minute per move (60 to 90 s measured by the tutorial)


@dataclass(frozen=True)
class FailoverIpArgs:
    spec: object  # components.spec.ClusterSpec
    # Secret Output of {applicationKey, applicationSecret, consumerKey} (rest) or {nic, password} (soapi);
    # None: python-ovh's OVH_* environment variables or ovh.conf, read where the engine runs the provider.
    credentials: Optional[pulumi.Output] = None
    move_timeout: float = MOVE_TIMEOUT
    # True in a cluster: a fail-back is Heartbeat's hand-over (HeartbeatGroup's HandOver), never an API move
    hand_over: bool = True


class FailoverIp(pulumi.ComponentResource):
    """Outputs: address, routed_to (the OVH service it is routed to, as last read), active_node (the node
    whose service that is; None when it is routed to none of the two)."""

    def __init__(self, name: str, args: FailoverIpArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:failover:FailoverIp", name, None, opts)
        spec = args.spec
        fip = spec.failover_ip
        initial = spec.node(fip.initial_node)
        api = spec.ovh_api
        node_of_service: Dict[str, str] = {n.service: n.name for n in spec.nodes}
        soapi = None
        if api.backend == "soapi":
            # the legacy API names the server the IP belongs to and routes to main addresses
            soapi = {"dedicated": initial.service, "addresses": {n.service: n.address for n in spec.nodes}}
        self.routing = FailoverRouting(
            f"{name}-routing", ip=fip.cidr if fip.is_block else fip.address, service=initial.service,
            fail_back=fip.fail_back, backend=api.backend, endpoint=api.endpoint, credentials=args.credentials,
            timeout=args.move_timeout, soapi=soapi, hand_over=args.hand_over, nodes=node_of_service,
            opts=pulumi.ResourceOptions(parent=self))
        self.address = fip.address
        self.initial_node = fip.initial_node
        self.routed_to = self.routing.routed_to
        self.active_node = self.routing.activeNode
        self.register_outputs({"address": self.address, "routedTo": self.routed_to, "activeNode": self.active_node})
