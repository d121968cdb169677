"""What brings the encrypted link and the firewall back when a server reboots, before DRBD and Heartbeat.

xfrm states and policies and nftables tables live in the kernel only: after a reboot, a node without its SAs
sends DRBD and Heartbeat in clear to a peer whose policy requires ESP, hears nothing back, and would take the
resource group while the peer still holds it. So the node loads them at boot, before the network comes up
and before drbd.service and heartbeat.service, from the same files `pulumi up` writes. One init script serves
both init systems: systemd runs it from a unit of ours (ordering), sysv from its LSB header."""
from components.render import MANAGED

NAME = "ovh-ha-network"
SCRIPT_PATH = f"/etc/init.d/{NAME}"
UNIT_PATH = f"/etc/systemd/system/{NAME}.service"
XFRM_PATH = "/etc/ovh-ha/ipsec.xfrm"                  # secret: it carries the keys (0600)
XFRM_DELETE_PATH = "/etc/ovh-ha/ipsec.xfrm-delete"
NFT_PATH = "/etc/ovh-ha/nftables.nft"

ENABLE = (f"if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --quiet {NAME}.service; "
          f"else update-rc.d {NAME} defaults >/dev/null && update-rc.d {NAME} enable >/dev/null; fi")
PROBE = (f"if [ -d /run/systemd/system ]; then echo systemd $(systemctl is-enabled {NAME}.service 2>&1); "
         f"else echo sysv $(ls /etc/rcS.d 2>/dev/null | grep -c '^S[0-9]*{NAME}$'); fi")
DISABLE = (f"if [ -d /run/systemd/system ]; then systemctl disable --quiet {NAME}.service 2>/dev/null; "
           f"systemctl daemon-reload; else update-rc.d {NAME} remove >/dev/null 2>&1; fi; true")


def init_script() -> str:
    """start loads what exists (the files of a disabled feature are absent); stop leaves the kernel as it is
    (taking the link down is `pulumi destroy`'s job, not a shutdown's); status: loaded or not."""
    return f"""#!/bin/sh
# {SCRIPT_PATH}, {MANAGED}
### BEGIN INIT INFO
# Provides:          {NAME}
# Required-Start:    $local_fs
# Required-Stop:
# X-Start-Before:    networking drbd heartbeat
# Default-Start:     S
# Default-Stop:
# Short-Description: ovh-ha-cluster: IPsec SAs and firewall before DRBD and Heartbeat
### END INIT INFO
XFRM={XFRM_PATH}
XFRM_DELETE={XFRM_DELETE_PATH}
NFT={NFT_PATH}

start() {{
    if [ -r "$XFRM" ]; then
        [ -r "$XFRM_DELETE" ] && ip -force -batch "$XFRM_DELETE" >/dev/null 2>&1
        ip -batch "$XFRM" || return 1
    fi
    if [ -r "$NFT" ]; then
        nft -f "$NFT" || return 1
    fi
    return 0
}}

status() {{
    if [ -r "$NFT" ] && ! nft list table inet ovh_ha >/dev/null 2>&1; then return 3; fi
    if [ -r "$XFRM" ] && [ -z "$(ip xfrm policy list)" ]; then return 3; fi
    return 0
}}

case "$1" in
    start|restart|force-reload) start ;;
    stop) exit 0 ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status|restart" >&2; exit 3 ;;
esac
"""


def unit() -> str:
    return f"""# {UNIT_PATH}, {MANAGED}
[Unit]
Description=ovh-ha-cluster: IPsec SAs and firewall before the network, DRBD and Heartbeat
DefaultDependencies=no
After=local-fs.target systemd-modules-load.service
Before=network-pre.target drbd.service heartbeat.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={SCRIPT_PATH} start

[Install]
WantedBy=multi-user.target
"""
