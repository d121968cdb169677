"""Facts from captured probe output: one JSON file per case under tests/remote/facts/<fact>/.

A case holds the probe's arguments, the exact command it must build, the exit status and output lines, and
the fact expected from them (or `error`, a substring of the ValueError the parser must raise). `note` says
whether the output was captured on this machine or written by hand (and why).

The live tests at the end run the probes themselves on this machine (temporary files, a throwaway network
namespace), so a probe that only looks right as a string cannot pass."""
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from components.remote import facts

CASES = sorted((Path(__file__).parent / "facts").glob("*/*.json"))


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_fact(path):
    case = json.loads(path.read_text())
    fact = path.parent.name
    assert case.get("note"), "say whether the output was captured or hand-written"
    assert ("error" in case) != ("fact" in case), "a case expects either a fact or an error"
    assert facts.command_for(fact, *case["args"]) == case["command"]
    if "error" in case:
        with pytest.raises(ValueError, match=re.escape(case["error"])):
            facts.parse(fact, case["status"], case["output"])
        return
    parsed = facts.parse(fact, case["status"], case["output"])
    assert parsed == case["fact"]
    # no key printed by a probe ever survives into a fact (only fingerprints do)
    shown = json.dumps(parsed).lower()
    for key in re.findall(r"0x([0-9a-fA-F]{16,})", "\n".join(case["output"])):
        assert key.lower() not in shown


def test_every_fact_has_cases():
    assert {p.parent.name for p in CASES} == set(facts.FACTS)


# -- the probes run for real -----------------------------------------------------------------------------------

def probe(fact, *args, netns=None):
    command = facts.command_for(fact, *args)
    argv = ["sh", "-c", command] if netns is None else ["ip", "netns", "exec", netns, "sh", "-c", command]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return facts.parse(fact, done.returncode, done.stdout.splitlines())


def test_file_probe_live(tmp_path):
    secret = tmp_path / "auth keys"            # a space: the path must be quoted
    secret.write_text("auth 1\n1 sha1 not-a-real-key\n")
    secret.chmod(0o600)
    (tmp_path / "link").symlink_to(secret)
    fact = probe("file", str(secret))
    assert fact == {"type": "regular file", "mode": "0600", "owner": pwd.getpwuid(os.geteuid()).pw_name,
                    "group": grp.getgrgid(os.getegid()).gr_name, "size": secret.stat().st_size,
                    "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    assert probe("file", str(tmp_path / "absent")) is None
    assert probe("file", str(tmp_path))["type"] == "directory"
    link = probe("file", str(tmp_path / "link"))
    assert (link["type"], link["sha256"]) == ("symbolic link", fact["sha256"])


def test_packages_probe_live():
    if not shutil.which("dpkg-query"):
        pytest.skip("dpkg-query is not installed here (not a Debian system)")
    found = probe("packages", ["dpkg", "no-such-package-ovhha"])
    assert set(found) == {"dpkg"} and re.match(r"^[0-9]", found["dpkg"])


def test_service_probe_live_not_installed():
    assert probe("service", "no-such-service-ovhha") == {
        "manager": "systemd" if os.path.isdir("/run/systemd/system") else "none",
        "installed": False, "enabled": False, "running": False}


def test_listing_probe_live(tmp_path):
    listed = tmp_path / "listed"
    listed.write_text("table inet ovh_ha {\n}\n")
    # $(...) drops the final newline before the digest is taken
    assert probe("listing", f"cat {listed}") == hashlib.sha256(b"table inet ovh_ha {\n}").hexdigest()
    assert probe("listing", f"cat {tmp_path / 'absent'}") is None


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    if not shutil.which("ip"):
        pytest.skip("iproute2 (ip) is not installed")
    name = f"ovhha-fact-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"ip netns add failed: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def test_xfrm_probe_live_policies(netns):
    """Policies only: this kernel has no ESP, so it holds no SA (the state format is covered by fixtures)."""
    for src, dst, direction in (("192.0.2.11", "192.0.2.22", "out"), ("192.0.2.22", "192.0.2.11", "in")):
        subprocess.run(["ip", "netns", "exec", netns, "ip", "xfrm", "policy", "add", "src", f"{src}/32",
                        "dst", f"{dst}/32", "dir", direction, "tmpl", "src", src, "dst", dst, "proto", "esp",
                        "mode", "transport"], check=True, capture_output=True, timeout=30)
    assert probe("xfrm", netns=netns) == {"states": [], "policies": [
        {"src": "192.0.2.11/32", "dst": "192.0.2.22/32", "dir": "out",
         "tmpl": [{"src": "192.0.2.11", "dst": "192.0.2.22", "proto": "esp", "mode": "transport"}]},
        {"src": "192.0.2.22/32", "dst": "192.0.2.11/32", "dir": "in",
         "tmpl": [{"src": "192.0.2.22", "dst": "192.0.2.11", "proto": "esp", "mode": "transport"}]}]}


# the kernel's lines for resource r0 (minor 0), as DRBD 8.4.11 logs them (captured in the VM lab)
_SPLIT = "block drbd0: Split-Brain detected but unresolved, dropping connection!"
_RESYNCED = "block drbd0: conn( SyncTarget -> Connected ) disk( Inconsistent -> UpToDate )"
_RECONNECTED = "drbd r0: conn( WFReportParams -> Connected ) peer( Unknown -> Secondary )"


@pytest.mark.parametrize("kernel, expected", [
    ([_RECONNECTED], "0"),
    ([_RECONNECTED, "drbd r0: conn( Connected -> Disconnecting )", _SPLIT], "1"),
    ([_SPLIT, "block drbd0: conn( WFBitMapT -> WFSyncUUID )", _RESYNCED], "0"),
    ([_SPLIT, _RECONNECTED], "0"),
    ([_SPLIT, "drbd r0: conn( WFConnection -> WFReportParams ) ",
      "block drbd0: Split-Brain detected, manually solved. Sync from peer node",
      "block drbd0: conn( WFSyncUUID -> SyncTarget ) disk( Outdated -> Inconsistent ) ", _RESYNCED + " "], "0"),
    ([_SPLIT, "block drbd1: conn( SyncTarget -> Connected )", "drbd r1: conn( WFReportParams -> Connected )"], "1"),
    ([], "0"),
], ids=["connected", "split-brain-last", "resynced-since", "reconnected-since", "discarded-and-resynced",
        "other-resource", "empty-log"])
def test_drbd_probe_reads_the_split_brain_from_the_kernel_log(tmp_path, kernel, expected):
    """The probe's dmesg pipeline, run for real with the kernel's lines from a stand-in `dmesg` on PATH (this
    machine has no DRBD); the parser only believes it while the resource is StandAlone (cases above)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kernel.log").write_text("".join(f"[  98.0{i}] {line}\n" for i, line in enumerate(kernel)))
    (bin_dir / "dmesg").write_text(f"#!/bin/sh\ncat {bin_dir / 'kernel.log'}\n")
    (bin_dir / "dmesg").chmod(0o755)
    command = facts.command_for("drbd", "r0", "/dev/drbd0")
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert f"splitbrain={expected}" in done.stdout.splitlines(), done.stdout
