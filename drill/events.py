"""Failover events read from the survivor's logs: Heartbeat's log file and the failover-IP script's own.

`parse(line, peer)` turns one log line into (event, detail) or None. The drill stamps each line with the time
it arrived (Heartbeat's own timestamps have one-second resolution); the resource script writes UTC timestamps
with milliseconds, which `stamp` returns when present.
"""
import datetime
import re
from typing import Optional, Tuple

# event name -> what the timeline calls it
LABELS = {
    "peer_dead": "peer declared dead",
    "takeover": "takeover started",
    "move_requested": "OVH move requested",
    "move_done": "OVH move task done",
    "no_move": "already routed here: no OVH move",
    "ip_up": "failover IP up",
    "drbd_start": "DRBD promotion started (drbddisk start)",
    "fs_start": "DRBD Primary; mounting the filesystem",
    "ip_start": "filesystem mounted; failover IP resource starting",
    "sms_sent": "SMS alert sent",
    "mail_sent": "alert e-mail handed to the mail command",
    "peer_back": "peer seen again",
    "release": "resources released (giving up)",
}

_PATTERNS = (
    ("peer_dead", r"WARN: node (?P<node>\S+): is dead"),
    ("takeover", r"(?:Taking over resource group|Acquiring resource group:) (?P<detail>.*)"),
    ("takeover", r"Resources being acquired from (?P<node>\S+?)\.?$"),
    ("move_requested", r"moving failover IP (?P<detail>\S+ from \S+ to \S+)"),
    ("move_done", r"failover IP (?P<detail>\S+): move task (?P<task>\d+) done"),
    ("no_move", r"failover IP (?P<detail>\S+) already routed to \S+: no move"),
    ("ip_up", r"address (?P<detail>\S+) up on \S+"),
    ("sms_sent", r"SMS alert sent to (?P<detail>.*)"),
    ("mail_sent", r"Running /etc/ha\.d/+resource\.d/MailTo (?P<detail>\S+) .* start$"),
    # Heartbeat runs the group left to right, one script at a time: each start line ends the previous step
    ("drbd_start", r"Running /etc/ha\.d/+resource\.d/drbddisk (?P<detail>\S+) start$"),
    ("fs_start", r"Running /etc/ha\.d/+resource\.d/Filesystem (?P<detail>\S+ \S+)(?: \S+)? start$"),
    ("ip_start", r"Running /etc/ha\.d/+resource\.d/ovh-failover-ip (?P<detail>\S+)(?: \S+)? start$"),
    ("peer_back", r"Status update for node (?P<node>\S+): status (?:up|active|init)"),
    ("peer_back", r"Link (?P<node>[^:\s]+):\S+ up\."),
    ("release", r"(?:Giving up all HA resources\.?|Releasing resource group:)(?P<detail>.*)"),
)
_COMPILED = [(name, re.compile(pattern)) for name, pattern in _PATTERNS]
_AGENT_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ovh-failover-ip\[")


def parse(line: str, peer: Optional[str] = None) -> Optional[Tuple[str, str]]:
    """The event a log line reports, with its detail; events about a node are kept only for `peer`."""
    for name, pattern in _COMPILED:
        match = pattern.search(line.rstrip("\n"))
        if not match:
            continue
        groups = match.groupdict()
        node = groups.get("node")
        if node is not None and peer is not None and node != peer:
            return None
        detail = (groups.get("detail") or node or "").strip()
        if groups.get("task"):
            detail = f"{detail} task {groups['task']}"
        return name, detail
    return None


def stamp(line: str) -> Optional[float]:
    """The epoch time a line of the resource script's log carries (UTC, milliseconds), else None."""
    match = _AGENT_STAMP.match(line)
    if not match:
        return None
    when = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()
