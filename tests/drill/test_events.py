"""Log lines -> failover events, one JSON case per file under events/ (lines, expected [event, detail, stamp])."""
import json
from pathlib import Path

import pytest

from drill import events

CASES = sorted((Path(__file__).parent / "events").glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_event_case(path):
    case = json.loads(path.read_text())
    assert len(case["lines"]) == len(case["expected"]), "one expected entry per line"
    for line, expected in zip(case["lines"], case["expected"]):
        found = events.parse(line, peer=case["peer"])
        if expected is None:
            assert found is None, line
            continue
        assert found == (expected[0], expected[1]), line
        stamp = events.stamp(line)
        assert (stamp is None) if expected[2] is None else stamp == pytest.approx(expected[2], abs=1e-3), line


def test_every_event_has_a_label():
    names = {name for name, _ in events._PATTERNS}
    assert names <= set(events.LABELS)
