"""Mail from the lab hosts: each host's msmtp hands every message to the lab's mail sink.

Heartbeat's MailTo calls `mail` (bsd-mailx), which hands the message to /usr/sbin/sendmail. On a machine whose
MTA is msmtp-mta that is msmtp, reading /etc/msmtprc: the lab writes one per host (in the host's own /etc)
pointing at 127.0.0.1:2525, which the forwarder carries to the mail sink on the machine (lab/mail_sink). The
file names the host (envelope sender root@HOST, EHLO HOST), so the sink tells the two hosts apart even though
every connection reaches it from the forwarder's 127.0.0.1.
"""
import os
from pathlib import Path
from typing import List, Optional, Sequence

from lab.netlab import topology as topo
from lab.netlab.state import write_private

SENDMAIL = Path("/usr/sbin/sendmail")
MSMTPRC = "/etc/msmtprc"
MSMTP_LOG = "/var/log/msmtp.log"

TEMPLATE = """\
# msmtp of the lab host {name}: every message goes to the lab's mail sink, which keeps it and relays nothing
# (127.0.0.1:{port} here is forwarded to the machine's loopback). Written by lab/lab.py up; no secrets.
defaults
auth off
tls off
logfile {log}

account lab-sink
host 127.0.0.1
port {port}
from %U@{name}
domain {name}

account default : lab-sink
"""


def msmtprc(name: str, port: int = topo.MAIL_SINK_PORT) -> str:
    return TEMPLATE.format(name=name, port=port, log=MSMTP_LOG)


def write_msmtprc(init_pid: int, name: str, port: int = topo.MAIL_SINK_PORT) -> bool:
    """Write the host's /etc/msmtprc (0644) through the host's own view of /etc, i.e. its running overlay, so
    the file lands in its etc.upper without touching a layer under a mounted overlay; False when unchanged."""
    return write_private(Path(f"/proc/{init_pid}/root") / MSMTPRC.lstrip("/"), msmtprc(name, port), 0o644)


def sendmail_problem(sendmail: Path = SENDMAIL) -> Optional[str]:
    """Why the hosts' `mail` will not reach the sink through msmtp, or None when /usr/sbin/sendmail is msmtp."""
    if not os.path.lexists(sendmail):
        return (f"{sendmail} does not exist on the machine: `mail` on the hosts has no MTA to hand messages to, so "
                f"lab mail (Heartbeat's MailTo) will not reach the mail sink; msmtp-mta provides it")
    target = Path(os.path.realpath(sendmail))
    if target.name == "msmtp":
        return None
    return (f"{sendmail} on the machine is {target}, not msmtp: the hosts share the machine's /usr, so their "
            f"`mail` hands messages to that MTA, which ignores the {MSMTPRC} the lab writes; lab mail (Heartbeat's "
            f"MailTo) will not reach the mail sink on 127.0.0.1:{topo.MAIL_SINK_PORT}. The lab neither installs "
            f"nor removes MTAs: to see lab mail in the sink, make msmtp-mta the machine's MTA yourself")


def problems(machine_ports: Sequence[int], sendmail: Path = SENDMAIL) -> List[str]:
    """Everything that keeps the hosts' mail from the sink; empty when nothing does."""
    found = []
    sendmail_issue = sendmail_problem(sendmail)
    if sendmail_issue:
        found.append(sendmail_issue)
    if topo.MAIL_SINK_PORT not in machine_ports:
        found.append(f"LAB_MACHINE_PORTS does not forward {topo.MAIL_SINK_PORT}: the hosts' msmtp finds no mail "
                     "sink on their 127.0.0.1, so lab mail will not reach it")
    return found
