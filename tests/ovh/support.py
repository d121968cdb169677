"""The test account every OVH test starts from, and helpers to read what the emulator recorded."""
import copy
import secrets
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional

from components.ovh import Retry

IP = "203.0.113.10"
CIDR = "203.0.113.10/32"
QUOTED = "203.0.113.10%2F32"
OTHER_IP = "198.51.100.77/32"
NODES = {"ns11111.ovh.net": "192.0.2.11", "ns22222.ovh.net": "192.0.2.22", "ns33333.ovh.net": "192.0.2.33"}
SMS_SERVICE = "sms-lb00001-1"
SMS_SENDER = "OVHHA"
SOAPI_NIC = "lb00001-ovh"

# Fast but real: backoff and polling in hundredths of a second.
FAST_RETRY = Retry(attempts=5, initial=0.01, factor=2.0, maximum=0.05)
POLL = 0.02


def new_keys() -> Dict[str, str]:
    """Throwaway credentials, made at test time."""
    return {"application_key": secrets.token_hex(8), "application_secret": secrets.token_hex(16),
            "consumer_key": secrets.token_hex(16), "soapi_password": secrets.token_urlsafe(12)}


def seed(keys: Dict[str, str], routed_to: str = "ns11111.ovh.net", rules: Optional[List[Dict[str, str]]] = None,
         move_delay: float = 0.0, consumer_state: str = "validated") -> Dict[str, Any]:
    all_calls = [{"method": m, "path": "/*"} for m in ("GET", "POST", "PUT", "DELETE")]
    return {
        "applications": {keys["application_key"]: {"secret": keys["application_secret"]}},
        "consumerKeys": {keys["consumer_key"]: {"applicationKey": keys["application_key"], "state": consumer_state,
                                                "rules": copy.deepcopy(rules if rules is not None else all_calls)}},
        "services": {name: {"ip": address} for name, address in NODES.items()},
        "failoverIps": {CIDR: {"routedTo": routed_to}, OTHER_IP: {"routedTo": "ns33333.ovh.net"}},
        "sms": {SMS_SERVICE: {"senders": [SMS_SENDER], "credits": 10}},
        "soapi": {"accounts": {SOAPI_NIC: {"password": keys["soapi_password"]}}},
        "settings": {"moveDelay": move_delay},
    }


def call_key(call: Dict[str, Any]) -> str:
    """"POST /ip/203.0.113.10%2F32/move"; SOAP calls add their operation: "POST /soapi login"."""
    key = f"{call['method']} {call['path'].split('?')[0]}"
    if call["path"] == "/soapi" and isinstance(call.get("body"), dict):
        key += " " + call["body"]["operation"]
    return key


def count_calls(calls: Iterable[Dict[str, Any]]) -> Counter:
    return Counter(call_key(c) for c in calls)


def api_calls(calls: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The calls that are not the clock read python-ovh makes before its first signed call."""
    return [c for c in calls if c["path"] != "/auth/time"]
