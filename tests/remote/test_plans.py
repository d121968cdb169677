"""Plans from facts: one JSON file per case under tests/remote/plans/<plan>/, expected steps written by hand.

Each case gives the declared state and the observed fact, and the steps expected (or `error`, a substring of
the PlanError); `drift`, when present, is the text `refresh` records for that fact (null: no drift). Every
plan has a `no-change` case: converged servers produce no step."""
import json
import re
from pathlib import Path

import pytest

from components.remote import plans

CASES = sorted((Path(__file__).parent / "plans").glob("*/*.json"))


def run_plan(name, case):
    if name == "plan_file":
        return plans.plan_file(case["desired"], case["fact"]), lambda: plans.drift_file(case["desired"], case["fact"])
    if name == "plan_service":
        return (plans.plan_service(case["desired"], case["fact"], restart=case.get("restart", False),
                                   reload=case.get("reload", False)),
                lambda: plans.drift_service(case["desired"], case["fact"]))
    if name == "plan_packages":
        return plans.plan_packages(case["names"], case["fact"]), lambda: plans.drift_packages(case["names"], case["fact"])
    if name == "plan_xfrm":
        desired = plans.desired_xfrm(case["commands"], case["keys"])
        bare = plans.desired_xfrm(case["commands"], None)
        placeholders = {f"{s['spi']}:{a['kind']}": a["key"] for s in bare["states"] for a in s["algorithms"]}
        observed = plans.owned_entries(case["fact"], desired, case.get("previously"))
        return plans.plan_xfrm(desired, observed, placeholders), lambda: plans.drift_xfrm(desired, observed)
    if name == "remove_xfrm":
        return plans.remove_xfrm(case["observed"]), None
    if name == "plan_applied":
        return (plans.plan_applied(case["apply"], case["recorded"], case["observed"], case["changed_inputs"]),
                lambda: None if case["changed_inputs"] else plans.drift_applied(case["recorded"], case["observed"]))
    if name == "plan_drbd":
        return (plans.plan_drbd(case["desired"], case["fact"], promoted_here=case.get("promoted_here", False)),
                lambda: plans.drift_drbd(case["fact"]))
    raise LookupError(name)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_plan(path):
    case = json.loads(path.read_text())
    if "error" in case:
        with pytest.raises(plans.PlanError, match=re.escape(case["error"])):
            run_plan(path.parent.name, case)
        return
    steps, drift = run_plan(path.parent.name, case)
    assert steps == case["steps"]
    if "drift" in case:
        assert drift() == case["drift"]
    # keys never reach a plan: xfrm steps carry placeholders, filled in only on the way to `ip -batch -`
    for secret in (case.get("keys") or {}).values():
        assert secret[2:] not in json.dumps(steps)


def test_every_plan_has_a_no_change_case():
    plans_seen = {p.parent.name for p in CASES}
    no_change = {p.parent.name for p in CASES if p.stem.endswith("no-change")}
    assert plans_seen == no_change == {"plan_file", "plan_service", "plan_packages", "plan_xfrm", "remove_xfrm",
                                       "plan_applied", "plan_drbd"}
