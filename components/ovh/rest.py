"""The failover IP through OVH's REST API (python-ovh).

A move: find the IP on the account (GET /ip?ip=..&type=failover), wait while another move of it is pending,
read where it is routed (GET /ip/{ip}) and stop there if it already is where it should be; otherwise
POST /ip/{ip}/move and follow the task until it is done. If the API refuses the move because another one
started meanwhile (the peer's agent), wait for that one and look again.
"""
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional

import ovh

from components.ovh.backend import FailoverBackend, MoveResult, canonical_ip, quote_ip
from components.ovh.client import DEFAULT_REQUEST_TIMEOUT, Retry, make_client, resilient_call
from components.ovh.errors import OvhConflict, OvhError, OvhNotFound, OvhTaskFailed, OvhTimeout

MOVE_FUNCTION = "genericMoveFloatingIp"
PENDING = ("todo", "doing")
FAILED = ("cancelled", "customerError", "ovhError")
_MAX_CONFLICTS = 5


class RestBackend(FailoverBackend):
    def __init__(self, client: Optional[ovh.Client] = None, *, endpoint: Optional[str] = None,
                 application_key: Optional[str] = None, application_secret: Optional[str] = None,
                 consumer_key: Optional[str] = None, config_file: Optional[str] = None,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT, poll_interval: float = 5.0,
                 retry: Retry = Retry(), sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client or make_client(endpoint, application_key, application_secret, consumer_key,
                                            config_file, request_timeout)
        self.poll_interval = poll_interval
        self.retry = retry
        self._sleep = sleep
        self._clock = clock

    # ------------------------------------------------------------------------------------- plumbing

    def _call(self, method: str, path: str, body: Optional[dict] = None, deadline: Optional[float] = None) -> Any:
        return resilient_call(self.client, method, path, body, retry=self.retry, deadline=deadline,
                              sleep=self._sleep, clock=self._clock)

    def _pause(self, deadline: float) -> None:
        self._sleep(max(0.0, min(self.poll_interval, deadline - self._clock())))

    # ---------------------------------------------------------------------------------------- reads

    def resolve(self, ip: str, deadline: Optional[float] = None) -> str:
        """The account's name for the failover IP ("203.0.113.10/32"); OvhNotFound if it has none."""
        wanted = canonical_ip(ip)
        query = urllib.parse.urlencode({"ip": wanted, "type": "failover"})
        found = self._call("GET", f"/ip?{query}", deadline=deadline)
        names = [str(n) for n in (found or [])]
        for name in names:
            if canonical_ip(name) == wanted:
                return canonical_ip(name)
        raise OvhNotFound(f"failover IP {wanted} is not on this OVH account (GET /ip?type=failover matching it "
                          f"returned {names})")

    def properties(self, ip: str, deadline: Optional[float] = None) -> Dict[str, Any]:
        return self._call("GET", f"/ip/{quote_ip(ip)}", deadline=deadline)

    def where_routed(self, ip: str) -> str:
        name = self.resolve(ip)
        routed = (self.properties(name).get("routedTo") or {}).get("serviceName")
        if not routed:
            raise OvhError(f"OVH API: GET /ip/{quote_ip(name)} names no routedTo.serviceName")
        return routed

    def pending_tasks(self, ip: str, deadline: Optional[float] = None) -> List[int]:
        ids: List[int] = []
        for status in PENDING:
            ids += self._call("GET", f"/ip/{quote_ip(ip)}/task?function={MOVE_FUNCTION}&status={status}",
                              deadline=deadline) or []
        return ids

    def task(self, ip: str, task_id: int, deadline: Optional[float] = None) -> Dict[str, Any]:
        return self._call("GET", f"/ip/{quote_ip(ip)}/task/{task_id}", deadline=deadline)

    # ---------------------------------------------------------------------------------------- waits

    def wait_pending(self, ip: str, timeout: float) -> List[int]:
        return self._wait_pending(canonical_ip(ip), self._clock() + timeout)

    def _wait_pending(self, name: str, deadline: float) -> List[int]:
        seen: List[int] = []
        while True:
            pending = self.pending_tasks(name, deadline)
            seen += [t for t in pending if t not in seen]
            if not pending:
                return seen
            if self._clock() >= deadline:
                raise OvhTimeout(f"failover IP {name}: move task(s) {pending} still pending when the time bound "
                                 "ran out", task_id=pending[0])
            self._pause(deadline)

    def _follow(self, name: str, task_id: int, deadline: float) -> Dict[str, Any]:
        status = None
        while True:
            task = self.task(name, task_id, deadline)
            status = task.get("status")
            if status == "done":
                return task
            if status in FAILED:
                comment = task.get("comment")
                raise OvhTaskFailed(f"failover IP {name}: move task {task_id} ended with status {status}"
                                    + (f" ({comment})" if comment else ""), status, task)
            if status not in PENDING:
                raise OvhError(f"failover IP {name}: move task {task_id} has an unknown status {status!r}")
            if self._clock() >= deadline:
                raise OvhTimeout(f"failover IP {name}: move task {task_id} still {status} when the time bound "
                                 "ran out (timeout); it may still complete", last_status=status, task_id=task_id)
            self._pause(deadline)

    # ----------------------------------------------------------------------------------------- move

    def move(self, ip: str, service: str, timeout: float = 300.0, nexthop: Optional[str] = None) -> MoveResult:
        deadline = self._clock() + timeout
        name = self.resolve(ip, deadline)
        conflicts = 0
        while True:
            self._wait_pending(name, deadline)
            previous = (self.properties(name, deadline).get("routedTo") or {}).get("serviceName")
            if previous == service:
                return MoveResult(ip=name, service=service, previous=previous, moved=False, status="unchanged")
            body: Dict[str, Any] = {"to": service}
            if nexthop:
                body["nexthop"] = nexthop
            try:
                task = self._call("POST", f"/ip/{quote_ip(name)}/move", body, deadline)
            except OvhConflict:
                # another move of this IP started since we looked: wait for it, then look again
                conflicts += 1
                if conflicts <= _MAX_CONFLICTS and self._clock() < deadline:
                    continue
                raise
            task_id = task.get("taskId")
            final = self._follow(name, task_id, deadline)
            now = (self.properties(name, deadline).get("routedTo") or {}).get("serviceName")
            if now != service:
                raise OvhError(f"failover IP {name}: move task {task_id} is done but the IP is routed to {now}, "
                               f"not {service}")
            return MoveResult(ip=name, service=service, previous=previous, moved=True, status="done",
                              task_id=task_id, task=final)
