"""Facts from captured probe output: one JSON file per case under tests/remote/facts/<fact>/.

A case holds the probe's arguments, the exact command it must build, the exit status and output lines, and
the fact expected from them (or `error`, a substring of the ValueError the parser must raise). `note` says
whether the output was captured on this machine or written by hand (and why)."""
import json
import re
from pathlib import Path

import pytest

from components.remote import facts

CASES = sorted((Path(__file__).parent / "facts").glob("*/*.json"))


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_fact(path):
    case = json.loads(path.read_text())
    fact = path.parent.name
    assert facts.command_for(fact, *case["args"]) == case["command"]
    if "error" in case:
        with pytest.raises(ValueError, match=re.escape(case["error"])):
            facts.parse(fact, case["status"], case["output"])
        return
    parsed = facts.parse(fact, case["status"], case["output"])
    assert parsed == case["fact"]
    # no key printed by a probe ever survives into a fact (only fingerprints do)
    shown = json.dumps(parsed)
    for key in re.findall(r"0x[0-9a-fA-F]{16,}", "\n".join(case["output"])):
        assert key[2:].lower() not in shown.lower()


def test_every_fact_has_cases():
    assert {p.parent.name for p in CASES} == set(facts.FACTS)
