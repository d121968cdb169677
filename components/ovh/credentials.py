"""Least-privilege OVH consumer keys: access rules covering only the calls each program makes, for one
failover IP (and one SMS service), and the request that asks the account owner to grant them.

Two roles, two keys:
  operator   the Pulumi program: finds the IP on the account, reads its routing, moves it, follows tasks
  node       the Heartbeat agent on each server: reads the routing, moves the IP, follows tasks, sends the
             failover SMS
A rule's path may end in `*` (any characters). The IP appears in paths URL-quoted ("203.0.113.10%2F32"), as
the clients send it; the same path with the slash unquoted is granted too, since the API documents no
normal form for an escaped slash and both spellings name the same IP (no extra power).
"""
import urllib.parse
from typing import Dict, List, Optional

import ovh

from components.ovh.backend import canonical_ip, quote_ip
from components.ovh.client import Retry, make_client, resilient_call
from components.ovh.errors import OvhConfigError

Rule = Dict[str, str]
ROLES = ("operator", "node")


def _ip_paths(ip: str) -> List[str]:
    return [f"/ip/{quote_ip(ip)}", f"/ip/{canonical_ip(ip)}"]


def _failover_rules(ip: str) -> List[Rule]:
    rules: List[Rule] = []
    for path in _ip_paths(ip):
        rules += [{"method": "GET", "path": path},
                  {"method": "POST", "path": f"{path}/move"},
                  {"method": "GET", "path": f"{path}/task"},
                  {"method": "GET", "path": f"{path}/task/*"}]
    return rules


def operator_rules(ip: str) -> List[Rule]:
    """What components.ovh.rest calls for the Pulumi program. GET /ip finds the IP on the account (the
    rule cannot be narrower: the IP is a query parameter there)."""
    return [{"method": "GET", "path": "/ip"}] + _failover_rules(ip)


def node_rules(ip: str, sms_service: Optional[str] = None) -> List[Rule]:
    """What the node agent (node/ovh-failover-ip) calls: no account-wide listing, one IP, one SMS service."""
    rules = _failover_rules(ip)
    if sms_service:
        if "/" in sms_service or "*" in sms_service:
            raise OvhConfigError(f"alerts.sms.service {sms_service!r}: expected an SMS service name "
                                 "like sms-ab12345-1")
        rules.append({"method": "POST", "path": f"/sms/{urllib.parse.quote(sms_service, safe='')}/jobs"})
    return rules


def rules_for(role: str, ip: str, sms_service: Optional[str] = None) -> List[Rule]:
    if role == "operator":
        return operator_rules(ip)
    if role == "node":
        return node_rules(ip, sms_service)
    raise OvhConfigError(f"credential role {role!r}: expected one of {', '.join(ROLES)}")


def request_credential(rules: List[Rule], client: Optional[ovh.Client] = None, *, endpoint: Optional[str] = None,
                       application_key: Optional[str] = None, application_secret: Optional[str] = None,
                       config_file: Optional[str] = None, redirection: Optional[str] = None,
                       allowed_ips: Optional[List[str]] = None, retry: Retry = Retry()) -> Dict[str, str]:
    """POST /auth/credential: returns {"consumerKey", "validationUrl", "state"}. The key works once the
    account owner opens validationUrl, logs in and accepts exactly these rules."""
    if client is None:
        client = make_client(endpoint, application_key, application_secret, None, config_file)
    body = {"accessRules": rules, "redirection": redirection, "allowedIPs": allowed_ips}
    return resilient_call(client, "POST", "/auth/credential", body, need_auth=False, retry=retry)
