"""The production shape in the VM lab: two Debian 12 VMs with real DRBD 8.4, real IPsec ESP, Heartbeat, the
firewall, the failover IP through the OVH API emulator and alerts through the lab's mail sink.

One stack for the module, in file order, from bare VMs (fresh disks): deploy and converge, a second `up` that
changes nothing, `refresh` reporting DRBD per node; encryption proven on the wire; the drill (the primary's qemu
killed with a writer running: zero acknowledged writes lost); `up` after the failover; a network partition and
its recovery; `destroy` leaving DRBD's metadata and data in place. Real engine, real sshd, real kernels.
"""
import json
import os
import re
import secrets
import subprocess
import time

import pytest

from tests.support.engine import REPO, lab_stack
from tests.support.emulator import lab_api
from tests.vmlab.test_vmlab import close_clients, hosts, sh, vmlab

NODES = ("ns11111", "ns22222")
PEER = {"ns11111": "ns22222", "ns22222": "ns11111"}
ADDRESS = {"ns11111": "192.0.2.11", "ns22222": "192.0.2.22"}
SPI_TOWARDS = {"ns11111": "0x00001001", "ns22222": "0x00001002"}
CIDR = "203.0.113.10/32"
STATUS = f"/etc/ha.d/resource.d/ovh-failover-ip {CIDR} eth0 status"
UP_TIMEOUT = 3600
SERVE_WAIT = 240        # seconds for Heartbeat to place the whole group under emulation (each script takes seconds)
PY = str(REPO / ".venv" / "bin" / "python")


@pytest.fixture(scope="module")
def vms():
    if os.geteuid() != 0:
        pytest.skip("the VM lab needs root (qemu, its base image, the link cut with nftables)")
    was_up = vmlab("status").returncode == 0
    vmlab("down")                                   # bare VMs: fresh root overlays and zeroed DRBD disks
    result = vmlab("up", timeout=UP_TIMEOUT)
    print(result.stdout)
    assert result.returncode == 0, f"vmlab up failed:\n{result.stdout}\n{result.stderr}"
    for service in ("lab.ovh_emulator", "lab.mail_sink"):
        started = subprocess.run([PY, "-m", service, "up"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
    lab_api("/lab/reset", {})                       # the seed's routing: ns11111
    info = json.loads((REPO / ".vmlab" / "hosts.json").read_text())
    yield hosts(info)
    close_clients()
    vmlab("link", "up")
    if not was_up:
        vmlab("down")


@pytest.fixture(scope="module")
def stack(vms, tmp_path_factory):
    stack = lab_stack(tmp_path_factory.mktemp("vmlab"), str(REPO / ".vmlab" / "ssh" / "id_ed25519"), name="vmlab",
                      source="vmlab")
    yield stack
    stack.pulumi("destroy", "--yes", check=False, timeout=1200)


def run(vms, node: str, command: str, timeout: float = 120, check: bool = True) -> str:
    rc, out, err = sh(vms[node], command, timeout=timeout)
    if check:
        assert rc == 0, f"{node}: {command}: exit {rc}\n{out}\n{err}"
    return out


def drbd(vms, node: str) -> dict:
    out = run(vms, node, "echo $(drbdadm role r0) $(drbdadm cstate r0) $(drbdadm dstate r0); "
                         "findmnt -n -o SOURCE /data || true", check=False)
    first, *rest = out.splitlines() or [""]
    words = first.split()
    return {"role": words[0].split("/")[0] if words else None, "cstate": words[1] if len(words) > 1 else None,
            "disk": words[2].split("/")[0] if len(words) > 2 else None, "mounted": "/dev/drbd0" in rest}


def serving(vms, node: str) -> bool:
    state = drbd(vms, node)
    holds = run(vms, node, STATUS, check=False).strip() == "running"
    return state["role"] == "Primary" and state["mounted"] and holds


def wait_until(what: str, check, seconds: float = SERVE_WAIT, pause: float = 2.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(pause)


def routed_to() -> str:
    return lab_api("/lab/state")["failoverIps"][CIDR]["routedTo"]


def generation(vms, node: str) -> str:
    """DRBD's current data generation UUID: create-md or a new initial sync would change it."""
    return run(vms, node, "drbdadm get-gi r0").strip().split(":")[0]


def esp_bytes(vms, node: str) -> int:
    """Bytes through the SA that leaves `node` for its peer (`ip -s xfrm state`, lifetime current)."""
    out = run(vms, node, f"ip -s xfrm state get src {ADDRESS[node]} dst {ADDRESS[PEER[node]]} proto esp "
                         f"spi {SPI_TOWARDS[PEER[node]]}")
    return int(re.search(r"lifetime current:\s+(\d+)\(bytes\)", out).group(1))


# -- deploy ------------------------------------------------------------------------------------------------

def test_up_converges_from_bare_vms(vms, stack):
    up = stack.pulumi("up", "--yes", timeout=1800)
    assert "created" in up.stdout
    wait_until("the group (DRBD Primary, /data mounted, the IP) on ns11111", lambda: serving(vms, "ns11111"))
    assert drbd(vms, "ns22222") == {"role": "Secondary", "cstate": "Connected", "disk": "UpToDate", "mounted": False}
    assert run(vms, "ns11111", "blkid -o value -s TYPE /dev/drbd0").strip() == "ext4"
    assert routed_to() == "ns11111.ovh.net"
    for node in NODES:   # after a reboot: the SAs and the firewall before DRBD and Heartbeat
        assert run(vms, node, "systemctl is-enabled ovh-ha-network.service drbd.service heartbeat.service"
                   ).split() == ["enabled"] * 3


def test_second_up_changes_nothing(vms, stack):
    again = stack.pulumi("up", "--yes", timeout=900)
    summary = again.stdout[again.stdout.rfind("Resources:"):]
    assert re.search(r"\d+ unchanged", summary) and not re.search(r"created|updated|replaced|deleted", summary), \
        again.stdout
    stack.pulumi("preview", "--expect-no-changes", timeout=900)


def test_refresh_reports_drbd_state_per_node_in_the_stack_outputs(vms, stack):
    stack.pulumi("refresh", "--yes", "--run-program", timeout=900)
    nodes = stack.outputs()["nodes"]
    assert {n: (nodes[n]["drbdRole"], nodes[n]["drbdConnection"], nodes[n]["drbdDiskState"]) for n in NODES} == {
        "ns11111": ("Primary", "Connected", "UpToDate"), "ns22222": ("Secondary", "Connected", "UpToDate")}


# -- encryption --------------------------------------------------------------------------------------------

def test_replication_is_encrypted_on_the_wire(vms, stack):
    """ESP byte counters grow with DRBD's traffic; a marker written to /data never crosses the link in clear,
    while the same capture does see it when it is sent in clear (the control)."""
    from vmlab.capture import Capture

    marker = b"OVHHA-" + secrets.token_hex(5).encode()          # 16 bytes: also a ping pattern
    before = esp_bytes(vms, "ns11111")
    write = (f"python3 -c \"import os; f=os.open('/data/marker.bin', os.O_WRONLY|os.O_CREAT|os.O_TRUNC); "
             f"os.write(f, b'{marker.decode()}' * 65536); os.fsync(f); os.close(f)\"")
    with Capture() as capture:
        run(vms, "ns11111", write, timeout=300)
        time.sleep(1)
    grown = esp_bytes(vms, "ns11111") - before
    print(f"ESP bytes ns11111 -> ns22222 grew by {grown} for 1 MiB written; capture: {capture.summary}")
    assert grown >= 1 << 20
    assert capture.summary.esp > 100 and capture.complete
    assert capture.contains(marker) == 0
    assert run(vms, "ns22222", "cat /proc/drbd | grep -c 'oos:0'").strip() == "1"

    # the control: the same bytes as an ICMP payload to an address no SA covers go out in clear
    neighbour = "ip neigh replace 192.0.2.99 lladdr 52:54:00:c0:02:22 dev eth0"
    with Capture() as control:
        run(vms, "ns11111", f"{neighbour}; ping -c 3 -i 0.3 -W 1 -p {marker.hex()} 192.0.2.99 >/dev/null; "
                             "ip neigh del 192.0.2.99 dev eth0", check=False)
        time.sleep(0.5)
    assert control.contains(marker) >= 1, control.summary


# -- the drill ---------------------------------------------------------------------------------------------

def test_drill_kills_the_primary_with_writes_in_flight_and_loses_no_acknowledged_write(vms, stack, tmp_path):
    report_file = tmp_path / "drill.json"
    stack_file = stack.dir / "Pulumi.vmlab.yaml"
    proc = subprocess.run([PY, "-m", "drill", "--stack", "vmlab", "--stack-file", str(stack_file), "--json",
                           str(report_file)], cwd=REPO, capture_output=True, text=True, timeout=1500)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(report_file.read_text())
    assert (report["crashed"], report["survivor"]) == ("ns11111", "ns22222")
    data = report["data"]
    assert data["ok"] and data["missing"] == [] and data["acked"] >= 20 and data["present"] >= data["acked"]
    assert report["moveCalls"] == 1
    for figure in ("detection", "drbd_promotion", "mount", "ip_up", "total"):
        assert report["split"][figure] is not None, report["split"]
    assert serving(vms, "ns22222") and routed_to() == "ns22222.ovh.net"
    # the crashed node rebooted into the cluster: SAs and firewall at boot, DRBD connected, Heartbeat running
    wait_until("ns11111 connected again as Secondary",
               lambda: drbd(vms, "ns11111") == {"role": "Secondary", "cstate": "Connected", "disk": "UpToDate",
                                                 "mounted": False})
    assert run(vms, "ns11111", "systemctl is-active heartbeat").strip() == "active"


def test_up_after_the_failover_keeps_the_new_primary_and_its_data(vms, stack):
    records = run(vms, "ns22222", "sha256sum /data/drill-*.rec")
    fs_uuid = run(vms, "ns22222", "blkid -o value -s UUID /dev/drbd0").strip()
    gis = {n: generation(vms, n) for n in NODES}
    up = stack.pulumi("up", "--yes", "--refresh", timeout=1800)
    assert "create-md" not in up.stdout and "mkfs" not in up.stdout
    assert serving(vms, "ns22222") and routed_to() == "ns22222.ovh.net"
    assert drbd(vms, "ns11111")["role"] == "Secondary"
    assert run(vms, "ns22222", "blkid -o value -s UUID /dev/drbd0").strip() == fs_uuid
    assert run(vms, "ns22222", "sha256sum /data/drill-*.rec") == records
    assert {n: generation(vms, n) for n in NODES} == gis
    stack.pulumi("preview", "--expect-no-changes", timeout=900)


# -- a network partition -----------------------------------------------------------------------------------

def mail_ids() -> set:
    from lab import mail_sink
    return {m["id"] for m in mail_sink.messages()}


def new_mail(before: set, match, seconds: float = 120) -> dict:
    from lab import mail_sink
    return mail_sink.wait_for(match, timeout=seconds, ignore=before)


def sms_since(epoch: float) -> list:
    return [j for j in lab_api("/lab/sms") if (j.get("labCreatedAt") or 0) >= epoch]


def split_brain_steps(survivor: str, victim: str) -> list:
    """README, "Split brain": the commands, node by node, that keep the survivor's writes and discard the
    victim's."""
    return [(victim, "service heartbeat stop"),
            (victim, "drbdadm secondary r0"),
            (victim, "drbdadm connect --discard-my-data r0"),
            (survivor, "drbdadm cstate r0 | grep -qx StandAlone && drbdadm connect r0 || true")]


def heartbeat_said(vms) -> str:
    pattern = "partition|own|Giving up|acquir|releas|Restart|restart|shutdown"
    return "\n".join(f"{n}:\n" + run(vms, n, f"grep -a -E '{pattern}' /var/log/ha-log | tail -n 20", check=False)
                     for n in NODES)


def settled_holder(vms, stable: float = 20.0, seconds: float = 300.0) -> list:
    """The nodes serving once the same single node has served for `stable` seconds in a row (Heartbeat gives
    everything up on both nodes and restarts after a partition: the first holder seen may be on its way out)."""
    deadline, since, last = time.monotonic() + seconds, None, None
    while time.monotonic() < deadline:
        now = [n for n in NODES if serving(vms, n)]
        if now != last:
            since, last = time.monotonic(), now
        elif len(now) == 1 and time.monotonic() - since >= stable:
            return now
        time.sleep(2)
    raise AssertionError(f"Heartbeat did not settle with one node serving within {seconds:g} s (last: {last})\n"
                         f"{heartbeat_said(vms)}")


def test_partition_is_reported_and_recovered_by_the_readme_steps(vms, stack):
    """The link cut with both VMs alive. Reported, not hidden: the standby takes the group too (both DRBD
    Primary, the IP moved to it, its alerts sent) and refresh shows two primaries; once the link is back DRBD
    finds the split brain and mails it, refresh says so per node and `up` refuses to choose; the README's
    steps keep the node OVH routes the IP to and discard the other's writes."""
    assert serving(vms, "ns22222") and drbd(vms, "ns11111")["role"] == "Secondary"
    mails, t0 = mail_ids(), time.time()
    kept = run(vms, "ns22222", "sha256sum /data/drill-*.rec")
    cut = vmlab("link", "down")
    assert cut.returncode == 0, cut.stdout + cut.stderr
    try:
        wait_until("ns11111 takes the group while ns22222 keeps it", lambda: serving(vms, "ns11111"))
        during = {n: drbd(vms, n) for n in NODES}
        print(f"during the partition: {during}; OVH routes the IP to {routed_to()}")
        assert during["ns11111"]["role"] == during["ns22222"]["role"] == "Primary"
        assert serving(vms, "ns22222"), "the partition's old primary keeps serving: nothing told it to stop"
        assert routed_to() == "ns11111.ovh.net"         # the last takeover moved the IP
        takeover_mail = new_mail(mails, lambda m: "ns11111" in (m.get("subject") or ""))
        print(f"takeover alert during the partition: {takeover_mail['subject']!r}")
        assert [j for j in sms_since(t0) if (j.get("message") or "").startswith("ns11111 ")], lab_api("/lab/sms")
        # the writes each side takes now: a split brain means someone's will be discarded
        for node in NODES:
            run(vms, node, f"echo written on {node} during the partition > /data/partition-{node}.txt; sync")
        stack.pulumi("refresh", "--yes", "--run-program", timeout=900)
        outputs = stack.outputs()
        print(f"stack outputs during the partition: drbd {outputs['drbd']}, routedTo {outputs['routedTo']}")
        assert sorted(outputs["drbd"]["primaries"]) == list(NODES)
        assert outputs["activeNode"] == "ns11111"
    finally:
        restored = vmlab("link", "up")
    assert restored.returncode == 0, restored.stdout + restored.stderr

    # the link is back: DRBD meets data written on both sides and drops the connection on both; Heartbeat
    # meets a peer "returning after partition", gives everything up on both nodes and starts again
    wait_until("DRBD StandAlone on both nodes after the split brain",
               lambda: all(drbd(vms, n)["cstate"] == "StandAlone" for n in NODES), seconds=120)
    alert = new_mail(mails, lambda m: (m.get("subject") or "").startswith("DRBD split brain"))
    print(f"split-brain alert: {alert['subject']!r} to {alert['rcptTos']}")
    holder = settled_holder(vms)
    settled = {n: drbd(vms, n) for n in NODES}
    print(f"after the link came back: {settled}; serving {holder}; OVH routes the IP to {routed_to()}\n"
          f"Heartbeat said:\n{heartbeat_said(vms)}")
    assert len(holder) == 1 and all(settled[n]["cstate"] == "StandAlone" for n in NODES)
    survivor = holder[0]
    victim = PEER[survivor]
    assert routed_to() == f"{survivor}.ovh.net"
    gis = {n: generation(vms, n) for n in NODES}

    stack.pulumi("refresh", "--yes", "--run-program", timeout=900)
    outputs = stack.outputs()
    print(f"stack outputs after the split brain: {json.dumps(outputs['nodes'])}")
    assert {n: outputs["nodes"][n]["drbdSplitBrain"] for n in NODES} == {"ns11111": True, "ns22222": True}
    assert {n: outputs["nodes"][n]["drbdConnection"] for n in NODES} == {"ns11111": "StandAlone",
                                                                        "ns22222": "StandAlone"}
    preview = stack.pulumi("preview", "--diff", timeout=900)
    assert "SPLIT BRAIN" in preview.stdout, preview.stdout
    refused = stack.pulumi("up", "--yes", check=False, timeout=900)
    assert refused.returncode != 0 and "split brain here" in refused.stdout + refused.stderr
    assert {n: generation(vms, n) for n in NODES} == gis          # `up` discarded nobody's writes

    # recovery (README, "Split brain"): keep the node OVH routes the IP to, discard the other's writes
    for node, command in split_brain_steps(survivor, victim):
        run(vms, node, command, timeout=180)
    wait_until("DRBD connected and in sync again",
               lambda: drbd(vms, victim) == {"role": "Secondary", "cstate": "Connected", "disk": "UpToDate",
                                             "mounted": False}
               and drbd(vms, survivor)["cstate"] == "Connected")
    assert serving(vms, survivor) and routed_to() == f"{survivor}.ovh.net"
    run(vms, victim, "service heartbeat start")
    for node in NODES:      # what the split-brain probe reads (facts.drbd_command), for the record
        print(f"{node} kernel log:\n" + run(vms, node, "dmesg | grep -E 'drbd' | tail -n 40", check=False))
    assert run(vms, survivor, "sha256sum /data/drill-*.rec") == kept
    assert run(vms, survivor, f"cat /data/partition-{survivor}.txt").strip() == \
        f"written on {survivor} during the partition"
    assert run(vms, survivor, f"test -e /data/partition-{victim}.txt || echo discarded").strip() == "discarded"
    stack.pulumi("up", "--yes", "--refresh", timeout=1800)
    outputs = stack.outputs()
    assert {n: outputs["nodes"][n]["drbdSplitBrain"] for n in NODES} == {"ns11111": False, "ns22222": False}
    assert outputs["drbd"]["primaries"] == [survivor] and outputs["activeNode"] == survivor
    stack.pulumi("preview", "--expect-no-changes", timeout=900)
    wait_until(f"{victim}'s Heartbeat running and {survivor} still serving",
               lambda: run(vms, victim, "systemctl is-active heartbeat", check=False).strip() == "active"
               and serving(vms, survivor), seconds=60)


# -- destroy -----------------------------------------------------------------------------------------------

def backing_disk(vms, node: str, sectors: int) -> str:
    """sha256 of the data area of the DRBD backing disk (internal metadata follows it), read past the caches."""
    return run(vms, node, f"dd if=/dev/vdb iflag=direct bs=512 count={sectors} status=none | sha256sum",
               timeout=300).split()[0]


def test_destroy_leaves_drbd_metadata_and_data_in_place(vms, stack):
    """Heartbeat stopped by hand first (an unmount writes the filesystem's superblock, legitimately): then
    everything `destroy` does must leave the disks as they were, byte for byte in the data area, and the
    metadata with the same generation identifiers."""
    active = [n for n in NODES if serving(vms, n)]
    assert len(active) == 1, active
    active = active[0]
    records = run(vms, active, "sha256sum /data/drill-*.rec")
    for node in (PEER[active], active):                 # the standby first, then the active node
        run(vms, node, "service heartbeat stop", timeout=180)
    wait_until("both Secondary, connected, in sync",
               lambda: all(drbd(vms, n) == {"role": "Secondary", "cstate": "Connected", "disk": "UpToDate",
                                            "mounted": False} for n in NODES))
    sectors = int(run(vms, "ns11111", "cat /sys/block/drbd0/size").strip())
    disks = {n: backing_disk(vms, n, sectors) for n in NODES}
    gis = {n: generation(vms, n) for n in NODES}

    down = stack.pulumi("destroy", "--yes", timeout=1200)
    assert "deleted" in down.stdout
    for node in NODES:
        assert run(vms, node, "test -e /etc/drbd.d/r0.res || echo gone").strip() == "gone"
        assert run(vms, node, "cat /proc/drbd | grep -c ' 0: cs:' || true").strip() == "0", "r0 still up"
    assert {n: backing_disk(vms, n, sectors) for n in NODES} == disks
    md = {n: run(vms, n, "drbdmeta 0 v08 /dev/vdb internal get-gi").strip().split(":")[0] for n in NODES}
    assert md == gis, f"generation identifiers before {gis}, after {md}"
    # the data is readable again by hand: the records the drill proved are still there
    got = run(vms, active, "mkdir -p /mnt/check && mount -o ro,noload -t ext4 /dev/vdb /mnt/check && "
                               "cd /mnt/check && sha256sum drill-*.rec; cd /; umount /mnt/check")
    assert got.replace("/mnt/check/", "") == records.replace("/data/", "")
