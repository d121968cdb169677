"""The failover-IP resource script as Heartbeat calls it, and its per-node configuration.

Heartbeat runs `/etc/ha.d/resource.d/ovh-failover-ip <ip>/<prefix> <interface> start|stop|status`, the
arguments coming from the `::`-separated fields of haresources. Everything else the script needs (which OVH
service to route the IP to, which API) is in a non-secret JSON file; the OVH credentials live in a separate
0600 file in python-ovh's own format.
"""
import json
from typing import Dict, List

from components.spec import ClusterSpec

NAME = "ovh-failover-ip"
SCRIPT_PATH = f"/etc/ha.d/resource.d/{NAME}"
CONFIG_PATH = "/etc/ovh-ha/failover-ip.json"
CREDENTIALS_PATH = "/etc/ovh-ha/ovh.conf"   # secret: mode 0600, written over SFTP or stdin, never argv
LOG_PATH = "/var/log/ovh-ha/failover-ip.log"  # the script's own steps with millisecond timestamps


def argv(spec: ClusterSpec, node_name: str) -> List[str]:
    """The resource as Heartbeat invokes it on `node_name`, without the trailing start|stop|status."""
    return [NAME, spec.failover_ip.cidr, spec.node(node_name).interface]


def haresources_entry(spec: ClusterSpec, node_name: str) -> str:
    return "::".join(argv(spec, node_name))


def config(spec: ClusterSpec, node_name: str) -> Dict[str, object]:
    node = spec.node(node_name)
    peer = spec.peer(node_name)
    fip = spec.failover_ip
    out = {
        "node": node.name,
        "peer": peer.name,
        "service": node.service,            # where `start` routes the failover IP
        "address": node.address,            # the legacy SOAP API routes to an address, not a service
        "interface": node.interface,
        "failoverIp": fip.cidr,
        "addresses": list(fip.addresses),
        "services": {n.name: n.service for n in spec.nodes},
        # The agent speaks the REST API whatever the program uses: its own consumer key is a REST credential.
        "backend": "rest",
        "endpoint": spec.ovh_api.endpoint,
        "credentialsFile": CREDENTIALS_PATH,
        "logFile": LOG_PATH,
    }
    sms = spec.alerts.sms
    if sms is not None and sms.enabled:
        out["sms"] = {"service": sms.service, "sender": sms.sender, "recipients": list(sms.recipients)}
    return out


def config_file(spec: ClusterSpec, node_name: str) -> str:
    return json.dumps(config(spec, node_name), indent=2, sort_keys=True) + "\n"


def credentials_file(endpoint: str, application_key: str, application_secret: str, consumer_key: str) -> str:
    """python-ovh's configuration file (INI). Secret: keep the result in a secret Output."""
    for value in (endpoint, application_key, application_secret, consumer_key):
        if not value or any(c in value for c in "\r\n"):
            raise ValueError("OVH credentials must be non-empty single-line strings")
    return (f"[default]\nendpoint={endpoint}\n\n[{endpoint}]\napplication_key={application_key}\n"
            f"application_secret={application_secret}\nconsumer_key={consumer_key}\n")
