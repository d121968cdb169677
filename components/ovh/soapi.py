"""The failover IP through OVH's legacy SOAP API, as the tutorial's script drove it, with zeep.

The calls are the tutorial's (login, dedicatedFailoverUpdate, logout) plus dedicatedFailoverList to read
where the IP goes: the SOAP API routes to a server's main address rather than to a service name and shows no
task, so a move is followed by reading the routing until it names the new address. The WSDL ships with this
package (soapi.wsdl); its service address is replaced by the endpoint given.
"""
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Mapping, Optional

import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from components.ovh.backend import FailoverBackend, MoveResult, bare_ip, canonical_ip
from components.ovh.client import DEFAULT_REQUEST_TIMEOUT, Retry
from components.ovh.errors import (OvhAuthError, OvhConfigError, OvhConflict, OvhError, OvhNotFound, OvhTimeout,
                                   OvhUnavailable)

WSDL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "soapi.wsdl")
BINDING = "{urn:ovh-ha-cluster:soapi}soapiBinding"


class SoapiBackend(FailoverBackend):
    """`dedicated` is the server the failover IP belongs to (the tutorial's first argument);
    `service_addresses` maps each service name to its main IPv4 address."""

    def __init__(self, endpoint: str, nic: str, password: str, dedicated: str,
                 service_addresses: Mapping[str, str], *, wsdl: str = WSDL,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT, poll_interval: float = 5.0,
                 retry: Retry = Retry(), sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        if not endpoint.startswith(("http://", "https://")):
            raise OvhConfigError(f"soapi endpoint {endpoint!r}: expected an http(s) URL")
        if not nic or not password:
            raise OvhConfigError("soapi credentials: the nic handle and its password are both required")
        self.dedicated = dedicated
        self.addresses = dict(service_addresses)
        self.poll_interval = poll_interval
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self._nic = nic
        self._password = password
        transport = Transport(timeout=request_timeout, operation_timeout=request_timeout)
        self._zeep = zeep.Client(wsdl, transport=transport)
        self._service = self._zeep.create_service(BINDING, endpoint)

    # ------------------------------------------------------------------------------------- plumbing

    def _call(self, operation: str, *args: Any, deadline: Optional[float] = None) -> Any:
        """One SOAP call, retried on HTTP 5xx/429 and network errors; SOAP faults raise at once."""
        shown = "login" if operation == "login" else f"{operation}({', '.join(map(str, args[1:]))})"
        last: Optional[BaseException] = None
        for attempt in range(self.retry.attempts):
            try:
                return getattr(self._service, operation)(*args)
            except zeep.exceptions.Fault as fault:
                message = str(fault.message)
                if operation == "login" or "session" in message:
                    raise OvhAuthError(f"OVH SOAP API refused {shown}: {message}") from None
                if "already pending" in message:
                    raise OvhConflict(f"OVH SOAP API refused {shown}: {message}") from None
                if "does not exist" in message:
                    raise OvhNotFound(f"OVH SOAP API: {shown}: {message}") from None
                raise OvhError(f"OVH SOAP API refused {shown}: {message}") from None
            except zeep.exceptions.TransportError as err:
                if not (err.status_code == 429 or err.status_code >= 500):
                    raise OvhError(f"OVH SOAP API: {shown}: HTTP {err.status_code}") from None
                last = err
            except (requests.RequestException, zeep.exceptions.XMLSyntaxError) as err:
                last = err
            wait = self.retry.delay(attempt)
            if attempt + 1 >= self.retry.attempts:
                break
            if deadline is not None and self._clock() + wait > deadline:
                break
            self._sleep(wait)
        detail = f"HTTP {last.status_code}" if isinstance(last, zeep.exceptions.TransportError) else type(last).__name__
        raise OvhUnavailable(f"OVH SOAP API: {shown} kept failing ({detail})")

    @contextmanager
    def session(self, deadline: Optional[float] = None) -> Iterator[str]:
        token = self._call("login", self._nic, self._password, "en", False, deadline=deadline)
        try:
            yield token
        finally:
            try:
                self._call("logout", token, deadline=deadline)
            except OvhError:
                pass  # the session expires on its own; the move's outcome is what matters

    def _service_of(self, address: str) -> str:
        for service, main in self.addresses.items():
            if main == address:
                return service
        raise OvhError(f"the failover IP is routed to {address}, which is none of the known servers' addresses "
                       f"({', '.join(f'{s}={a}' for s, a in self.addresses.items())})")

    def _routed(self, session: str, ip: str, deadline: Optional[float] = None) -> str:
        wanted = bare_ip(ip)
        listing: List[Any] = self._call("dedicatedFailoverList", session, self.dedicated, deadline=deadline) or []
        for item in listing:
            if item.ip in (wanted, canonical_ip(ip)):
                return item.routedTo
        raise OvhNotFound(f"failover IP {wanted} is not among {self.dedicated}'s failover IPs")

    # ------------------------------------------------------------------------------------ interface

    def where_routed(self, ip: str) -> str:
        with self.session() as session:
            return self._service_of(self._routed(session, ip))

    def wait_pending(self, ip: str, timeout: float) -> List[int]:
        """The SOAP API shows no tasks: there is nothing to wait for that it could tell."""
        return []

    def move(self, ip: str, service: str, timeout: float = 300.0) -> MoveResult:
        if service not in self.addresses:
            raise OvhConfigError(f"no main address known for service {service!r} "
                                 f"(known: {', '.join(self.addresses)})")
        target = self.addresses[service]
        deadline = self._clock() + timeout
        name = canonical_ip(ip)
        with self.session(deadline) as session:
            previous_address = self._routed(session, ip, deadline)
            previous = self._service_of(previous_address)
            if previous_address == target:
                return MoveResult(ip=name, service=service, previous=previous, moved=False, status="unchanged")
            while True:
                try:
                    self._call("dedicatedFailoverUpdate", session, self.dedicated, bare_ip(ip), target,
                               deadline=deadline)
                    break
                except OvhConflict:
                    if self._clock() >= deadline:
                        raise OvhTimeout(f"failover IP {name}: another move stayed pending until the time bound ran "
                                         "out (timeout)") from None
                    self._sleep(max(0.0, min(self.poll_interval, deadline - self._clock())))
                    if self._routed(session, ip, deadline) == target:
                        return MoveResult(ip=name, service=service, previous=previous, moved=False,
                                          status="unchanged")
            while True:
                routed = self._routed(session, ip, deadline)
                if routed == target:
                    return MoveResult(ip=name, service=service, previous=previous, moved=True, status="done",
                                      task={"routedTo": routed})
                if self._clock() >= deadline:
                    raise OvhTimeout(f"failover IP {name}: still routed to {routed}, not {target}, when the time bound "
                                     "ran out (timeout)", last_status="pending")
                self._sleep(max(0.0, min(self.poll_interval, deadline - self._clock())))

