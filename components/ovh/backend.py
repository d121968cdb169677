"""The one interface both OVH backends (REST, legacy SOAP) offer for a failover IP."""
import abc
import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from components.ovh.errors import OvhConfigError


@dataclass(frozen=True)
class MoveResult:
    """How a move ended. `moved` is False when the IP was already routed to `service` (no move requested)."""
    ip: str                      # the account's name for it, e.g. "203.0.113.10/32"
    service: str                 # where it is routed now
    previous: str                # where it was routed before
    moved: bool
    status: str                  # "done", or "unchanged" when nothing had to move
    task_id: Optional[int] = None
    task: Dict[str, Any] = field(default_factory=dict)


class FailoverBackend(abc.ABC):
    """Where a failover IP is routed, and moving it to another OVH service (dedicated server)."""

    @abc.abstractmethod
    def where_routed(self, ip: str) -> str:
        """The service name the IP is routed to now."""

    @abc.abstractmethod
    def wait_pending(self, ip: str, timeout: float) -> List[int]:
        """Wait until no move of the IP is pending; return the ids of the tasks waited for.
        Raises OvhTimeout when `timeout` seconds pass first."""

    @abc.abstractmethod
    def move(self, ip: str, service: str, timeout: float = 300.0) -> MoveResult:
        """Route the IP to `service` and wait, at most `timeout` seconds, until that is done.
        No move is requested when the IP is already routed there."""


def canonical_ip(ip: str) -> str:
    """"203.0.113.10" or "203.0.113.10/32" -> "203.0.113.10/32"; a block keeps its prefix."""
    try:
        return str(ipaddress.IPv4Network(ip.strip(), strict=False))
    except (ValueError, AttributeError):
        raise OvhConfigError(f"failover IP {ip!r} is not an IPv4 address or block (expected e.g. 203.0.113.10 "
                             "or 203.0.113.8/30)") from None


def quote_ip(ip: str) -> str:
    """The IP as it goes in an API path: "203.0.113.10%2F32"."""
    return urllib.parse.quote(canonical_ip(ip), safe="")


def bare_ip(ip: str) -> str:
    """A single address without its /32 (how the legacy API names it); a block keeps its prefix."""
    network = ipaddress.IPv4Network(canonical_ip(ip))
    return str(network.network_address) if network.prefixlen == 32 else str(network)
