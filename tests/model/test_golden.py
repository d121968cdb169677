"""Rendered files against expected files in tests/model/golden/<stack>/.

`tutorial` is the tutorial's cluster with DESIGN.md's modernisations: the same ha.cf timings and ucast
layout (udpport moved before ucast, debugfile dropped, node names as `uname -n`), sha1 authkeys, the same
resource group with our OVH API agent in place of IPaddrFO (and after the storage, not before it), DRBD 8.4 syntax (syncer rate -> disk resync-rate,
outdate-peer -> fence-peer through Heartbeat's dopd, al-extents left at DRBD's default), ESP with an AEAD
instead of AH hmac-md5 + ESP 3des-cbc, and the firewall the tutorial left to the reader.
Keys appear as placeholders (@KEY:<node>@, @AUTHKEY@): real keys are generated at test time, elsewhere.

OVHHA_UPDATE_GOLDEN=1 rewrites the expected files from the current code (then review the diff).
"""
import os
from typing import Dict

import pytest

from components.render import agent, drbd, firewall, heartbeat, ipsec
from tests.model.support import GOLDEN, stack

STACKS = ("tutorial", "lab", "legacy")


def renders(name: str) -> Dict[str, str]:
    spec, _values, _ = stack(name)
    files = {"haresources": heartbeat.haresources(spec), "authkeys": heartbeat.authkeys("@AUTHKEY@")}
    if spec.drbd.enabled:
        files[f"{spec.drbd.resource}.res"] = drbd.resource_file(spec)
        files["global_common.conf"] = drbd.global_common()
    for node in spec.node_names:
        files[f"{node}.ha.cf"] = heartbeat.ha_cf(spec, node)
        files[f"{node}.nft"] = firewall.ruleset(spec, node)
        files[f"{node}.failover-ip.json"] = agent.config_file(spec, node)
        if spec.ipsec.enabled:
            files[f"{node}.xfrm"] = ipsec.xfrm_batch(spec, node)
            files[f"{node}.xfrm-delete"] = ipsec.xfrm_delete_batch(spec, node)
            files[f"{node}.setkey.conf"] = ipsec.setkey_conf(spec, node)
    return files


CASES = [(name, file) for name in STACKS for file in sorted(renders(name))]


@pytest.mark.parametrize("name,file", CASES, ids=[f"{n}/{f}" for n, f in CASES])
def test_rendered_file_matches_golden(name, file):
    rendered = renders(name)[file]
    path = GOLDEN / name / file
    if os.environ.get("OVHHA_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
        pytest.skip(f"rewrote {path} (OVHHA_UPDATE_GOLDEN=1)")
    assert path.exists(), f"no golden file {path}; run with OVHHA_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_text()


@pytest.mark.parametrize("name", STACKS)
def test_no_stale_golden_files(name):
    expected = set(renders(name))
    present = {p.name for p in (GOLDEN / name).iterdir()}
    assert present == expected, f"golden files without a rendering: {sorted(present - expected)}"
