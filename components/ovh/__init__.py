"""The OVH API layer: one FailoverBackend interface, two backends (REST through python-ovh, the legacy SOAP
API through zeep), least-privilege credential requests and SMS alerts. Nothing here depends on Pulumi.

    backend = RestBackend(endpoint="ovh-eu", application_key=..., application_secret=..., consumer_key=...)
    backend.where_routed("203.0.113.10")                 -> "ns11111.ovh.net"
    backend.move("203.0.113.10", "ns22222.ovh.net", timeout=300)   -> MoveResult(moved=True, status="done", ...)
"""
from components.ovh.backend import FailoverBackend, MoveResult, bare_ip, canonical_ip, quote_ip
from components.ovh.client import Retry, make_client, register_endpoint, resilient_call
from components.ovh.credentials import node_rules, operator_rules, request_credential, rules_for
from components.ovh.errors import (OvhAuthError, OvhConfigError, OvhConflict, OvhError, OvhNotFound, OvhTaskFailed,
                                   OvhTimeout, OvhUnavailable)
from components.ovh.rest import RestBackend
from components.ovh.sms import send_sms
from components.ovh.soapi import SoapiBackend

__all__ = [
    "FailoverBackend", "MoveResult", "RestBackend", "SoapiBackend", "Retry",
    "make_client", "register_endpoint", "resilient_call", "canonical_ip", "quote_ip", "bare_ip",
    "operator_rules", "node_rules", "rules_for", "request_credential", "send_sms",
    "OvhError", "OvhAuthError", "OvhConfigError", "OvhConflict", "OvhNotFound", "OvhTaskFailed", "OvhTimeout",
    "OvhUnavailable",
]
