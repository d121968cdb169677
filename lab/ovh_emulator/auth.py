"""Request authentication as the OVH API does it: application key, consumer key, clock, signature, rules.

The checks run in that order and each failure has the real API's status and `errorCode`, which python-ovh
turns into its typed exceptions (InvalidKey, InvalidCredential, NotCredential, NotGrantedCall, or
BadParametersError for the two 400s).
"""
import hashlib
import hmac
import re
from typing import Dict, List, Optional

from lab.ovh_emulator.state import AccountState, ApiError

# Routes that only need a known application key.
UNSIGNED = {("GET", "/auth/time"), ("POST", "/auth/credential")}


def signature(secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: str) -> str:
    text = "+".join([secret, consumer_key, method.upper(), url, body, timestamp])
    return "$1$" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def rule_matches(rule: Dict[str, str], method: str, path: str) -> bool:
    """A rule grants `method` on paths matching its pattern, where `*` stands for any characters."""
    if rule.get("method", "").upper() != method.upper():
        return False
    pattern = "^" + ".*".join(re.escape(part) for part in rule.get("path", "").split("*")) + "$"
    return re.match(pattern, path) is not None


def granted(rules: List[Dict[str, str]], method: str, path: str) -> bool:
    return any(rule_matches(rule, method, path) for rule in rules)


def authenticate(state: AccountState, method: str, path: str, url: str, body: str,
                 headers: Dict[str, str]) -> Optional[str]:
    """Raise the API's error for a request that may not run; return the consumer key used, if any.

    `path` is relative to the API root and without the query string (rules match it as sent, percent
    escapes included); `url` is the full URL the client signed.
    """
    app_key = headers.get("x-ovh-application")
    secret = state.application_secret(app_key) if app_key else None
    if (method, path) == ("GET", "/auth/time"):
        return None
    if secret is None:
        raise ApiError(403, "Invalid application key", error_code="INVALID_KEY")
    if (method, path) in UNSIGNED:
        return None
    consumer = headers.get("x-ovh-consumer")
    timestamp = headers.get("x-ovh-timestamp")
    sent = headers.get("x-ovh-signature")
    if not consumer or not timestamp or not sent:
        raise ApiError(401, "You must login first", error_code="NOT_AUTHENTICATED")
    entry = state.consumer_key(consumer)
    if entry is None or entry.get("applicationKey") != app_key or entry.get("state") == "revoked":
        raise ApiError(403, "This credential does not exist", error_code="INVALID_CREDENTIAL")
    if entry.get("state") != "validated":
        raise ApiError(403, "This credential is not valid", error_code="NOT_CREDENTIAL")
    try:
        skew = abs(int(timestamp) - state.now())
    except ValueError:
        raise ApiError(400, "Query out of time", error_code="QUERY_TIME_OUT")
    if skew > float(state.settings["timeTolerance"]):
        raise ApiError(400, "Query out of time", error_code="QUERY_TIME_OUT")
    expected = signature(secret, consumer, method, url, body, timestamp)
    if not hmac.compare_digest(expected, sent):
        raise ApiError(400, "Invalid signature", error_code="INVALID_SIGNATURE")
    if not granted(entry.get("rules", []), method, path):
        raise ApiError(403, "This call has not been granted", error_code="NOT_GRANTED_CALL")
    return consumer
