"""Faults a test queues through POST /lab/faults, consumed by the requests they match.

A fault is an object with a `kind` and optional `method` / `path` (a pattern where `*` stands for any
characters, matched against the API path without its query) and `count` (how many matching requests it
hits, default 1). Request faults:

  {"kind": "http_error", "status": 500|502|503|429|...}   answer that status with the API's error body
  {"kind": "drop"}                                        close the connection without an answer
  {"kind": "slow", "seconds": 2.5}                        answer normally, that much later
  {"kind": "auth_error", "errorCode": "INVALID_CREDENTIAL"} answer 403 as for a bad credential

Faults applied when queued (no matching, no count):

  {"kind": "task_status", "status": "cancelled"|"customerError"|"ovhError"|"done", "comment": "..."}
                                   the next move task ends with that status (one per fault)
  {"kind": "clock_skew", "seconds": 3600}     the API's clock runs that far ahead (negative: behind)
  {"kind": "revoke_consumer_key", "consumerKey": "..."}   invalidate that key (all keys when omitted)
"""
import threading
from typing import Any, Dict, List, Optional

from lab.ovh_emulator.auth import rule_matches
from lab.ovh_emulator.state import FINAL, AccountState, ApiError

REQUEST_KINDS = ("http_error", "drop", "slow", "auth_error")
IMMEDIATE_KINDS = ("task_status", "clock_skew", "revoke_consumer_key")

_ERRORS = {
    429: ("Client::TooManyRequests", "Too many requests"),
    500: ("Server::InternalServerError", "Internal server error"),
    502: ("Server::BadGateway", "Bad gateway"),
    503: ("Server::ServiceUnavailable", "Service temporarily unavailable"),
    504: ("Server::GatewayTimeout", "Gateway timeout"),
}
_AUTH_MESSAGES = {
    "INVALID_KEY": "Invalid application key",
    "INVALID_CREDENTIAL": "This credential does not exist",
    "NOT_CREDENTIAL": "This credential is not valid",
    "NOT_GRANTED_CALL": "This call has not been granted",
}


class FaultQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: List[Dict[str, Any]] = []

    def add(self, fault: Dict[str, Any], state: AccountState) -> Dict[str, Any]:
        """Validate and queue (or apply) one fault; return it as stored."""
        if not isinstance(fault, dict):
            raise ApiError(400, "a fault is an object with a kind", "Client::BadRequest")
        kind = fault.get("kind")
        if kind == "task_status":
            status = fault.get("status")
            if status not in FINAL:
                raise ApiError(400, f"task_status.status must be one of {', '.join(FINAL)}; got {status!r}",
                               "Client::BadRequest")
            with state.lock:
                state.task_outcomes.append({"status": status, "comment": fault.get("comment")})
            return fault
        if kind == "clock_skew":
            with state.lock:
                state.clock_offset = float(fault.get("seconds", 0))
            return fault
        if kind == "revoke_consumer_key":
            return {**fault, "revoked": len(state.revoke(fault.get("consumerKey")))}
        if kind not in REQUEST_KINDS:
            raise ApiError(400, f"unknown fault kind {kind!r}; expected one of "
                                f"{', '.join(REQUEST_KINDS + IMMEDIATE_KINDS)}", "Client::BadRequest")
        if kind == "http_error" and not isinstance(fault.get("status"), int):
            raise ApiError(400, "http_error.status must be an HTTP status code", "Client::BadRequest")
        stored = {"count": 1, **fault}
        with self._lock:
            self._queue.append(stored)
        return stored

    def take(self, method: str, path: str) -> Optional[Dict[str, Any]]:
        """The first queued fault matching this request, counted down."""
        with self._lock:
            for fault in self._queue:
                if fault.get("method") and fault["method"].upper() != method.upper():
                    continue
                if fault.get("path") and not rule_matches({"method": method, "path": fault["path"]}, method, path):
                    continue
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self._queue.remove(fault)
                return dict(fault)
        return None

    def pending(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._queue]

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


def error_for(fault: Dict[str, Any]) -> ApiError:
    """The API error a request fault answers with."""
    if fault["kind"] == "auth_error":
        code = fault.get("errorCode", "INVALID_CREDENTIAL")
        return ApiError(403, _AUTH_MESSAGES.get(code, "Forbidden"), error_code=code)
    status = int(fault["status"])
    cls, message = _ERRORS.get(status, ("Server::InternalServerError" if status >= 500 else "Client::BadRequest",
                                        f"Error {status}"))
    return ApiError(status, fault.get("message", message), cls)
