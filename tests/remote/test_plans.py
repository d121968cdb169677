"""Plans from facts: one JSON file per case under tests/remote/plans/<plan>/, expected steps written by hand.

Each case gives the declared state and the observed fact, and the steps expected (or `error`, a substring of
the PlanError); `drift`, when present, is the text `refresh` records for that fact (null: no drift), checked
for error cases too. Every plan has a `no-change` case: converged servers produce no step and, where the plan
has a drift describer, no drift."""
import json
import re
from pathlib import Path

import pytest

from components.remote import plans

CASES = sorted((Path(__file__).parent / "plans").glob("*/*.json"))


def _xfrm(case):
    """As the xfrm provider calls it: fingerprints from the secret keys, placeholders from the bare argv lists,
    and only the entries this resource owns."""
    desired = plans.desired_xfrm(case["commands"], case["keys"])
    bare = plans.desired_xfrm(case["commands"], None)
    placeholders = {f"{s['spi']}:{a['kind']}": a["key"] for s in bare["states"] for a in s["algorithms"]}
    observed = plans.owned_entries(case["fact"], desired, case.get("previously"))
    return desired, observed, placeholders


def _plan_xfrm(case):
    desired, observed, placeholders = _xfrm(case)
    return plans.plan_xfrm(desired, observed, placeholders)


def _drift_xfrm(case):
    desired, observed, _ = _xfrm(case)
    return plans.drift_xfrm(desired, observed)


# plan name -> (steps from a case, drift text from a case or None when the plan has no describer)
PLANS = {
    "plan_file": (lambda c: plans.plan_file(c["desired"], c["fact"]),
                  lambda c: plans.drift_file(c["desired"], c["fact"])),
    "plan_service": (lambda c: plans.plan_service(c["desired"], c["fact"], restart=c.get("restart", False),
                                                  reload=c.get("reload", False)),
                     lambda c: plans.drift_service(c["desired"], c["fact"])),
    "plan_packages": (lambda c: plans.plan_packages(c["names"], c["fact"]),
                      lambda c: plans.drift_packages(c["names"], c["fact"])),
    "plan_xfrm": (_plan_xfrm, _drift_xfrm),
    "remove_xfrm": (lambda c: plans.remove_xfrm(c["observed"]), None),
    # new inputs are not drift: refresh compares only what it listed after loading with what it lists now
    "plan_applied": (lambda c: plans.plan_applied(c["apply"], c["recorded"], c["observed"], c["changed_inputs"]),
                     lambda c: None if c["changed_inputs"] else plans.drift_applied(c["recorded"], c["observed"])),
    "plan_drbd": (lambda c: plans.plan_drbd(c["desired"], c["fact"], promoted_here=c.get("promoted_here", False)),
                  lambda c: plans.drift_drbd(c["fact"])),
}


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_plan(path):
    case = json.loads(path.read_text())
    plan, drift = PLANS[path.parent.name]
    assert ("error" in case) != ("steps" in case), "a case expects either steps or an error"
    if "drift" in case:
        assert drift is not None, f"{path.parent.name} has no drift describer"
        assert drift(case) == case["drift"]
    elif drift is not None and path.stem.endswith("no-change") and case.get("desired", {}).get("present", True):
        pytest.fail("a no-change case must state its drift (null)")
    if "error" in case:
        with pytest.raises(plans.PlanError, match=re.escape(case["error"])):
            plan(case)
        return
    steps = plan(case)
    assert steps == case["steps"]
    # keys never reach a plan: xfrm steps carry placeholders, filled in only on the way to `ip -batch -`
    for secret in (case.get("keys") or {}).values():
        assert secret.lower().removeprefix("0x") not in json.dumps(steps).lower()


def test_every_plan_has_a_no_change_case():
    plans_seen = {p.parent.name for p in CASES}
    no_change = {p.parent.name for p in CASES if p.stem.endswith("no-change")}
    assert plans_seen == no_change == set(PLANS)
    for path in CASES:
        if path.stem.endswith("no-change"):
            case = json.loads(path.read_text())
            assert case["steps"] == [], path


def test_drbd_diff_of_a_split_brain_is_a_pending_change_not_an_error():
    """`refresh --run-program` diffs every resource: a split brain must be recorded, not crash the refresh;
    the refusal is `up`'s (the split-brain-standalone case above), before any DRBD command runs."""
    from components.remote.resources import _DrbdProvider

    case = json.loads((Path(__file__).parent / "plans" / "plan_drbd" / "split-brain-standalone.json").read_text())
    props = {"resource": "r0", "device": "/dev/drbd0", "fsType": "ext4", "initialPrimary": True,
             "connection": {"node": "ns11111"}}
    result = _DrbdProvider().diff("ns11111:drbd:r0", {**props, "observed": case["fact"]}, props)
    assert result.changes is True and not result.replaces
