"""One stack configuration per file in tests/model/invalid/, each with the problems it must produce.

A case file holds:
  base:    the fixture stack it starts from (tests/model/stacks/<base>.yaml; default tutorial)
  config:  entries laid over the base's `config:`, keyed like `pulumi config set --path`
           (`ovh-ha-cluster:heartbeat.deadtime`, `ovh-ha-cluster:nodes[1].address`); null removes the entry
  secrets: entries set as with `--secret`, given in clear because the test plays the decrypting engine
  expect:  [{key, message}]: every problem, by exact key path and a substring of its wording
A case passes when exactly the expected problems are reported, all at once, and no secret value shows.
"""
import copy
import re
from typing import Any, Dict, List

import pytest
import yaml

from components.check_config import stack_values
from components.spec import SpecError, parse_config
from tests.model.support import INVALID, stack_config

CASES = sorted(INVALID.glob("*.yaml"))
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> List[Any]:
    steps, at = [], 0
    for match in _STEP.finditer(path):
        assert match.start() == at, f"bad path {path!r}"
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        at = match.end()
    assert at == len(path), f"bad path {path!r}"
    return steps


def set_path(config: Dict[str, Any], key: str, value: Any) -> None:
    """`pulumi config set --path` semantics on a stack's config mapping; None deletes."""
    match = re.match(r"^([^.\[]+)(.*)$", key)
    top, rest = match.group(1), match.group(2)
    if not rest:
        if value is None:
            config.pop(top, None)
        else:
            config[top] = value
        return
    steps = _steps(rest)
    node = config.setdefault(top, {} if isinstance(steps[0], str) else [])
    for step, following in zip(steps[:-1], steps[1:]):
        if isinstance(node, dict):
            node = node.setdefault(step, {} if isinstance(following, str) else [])
        else:
            node = node[step]
    last = steps[-1]
    if value is None:
        if isinstance(node, dict):
            node.pop(last, None)
        else:
            del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value


def load_case(path):
    case = yaml.safe_load(path.read_text())
    config = copy.deepcopy(stack_config(case.get("base", "tutorial")))
    for key, value in (case.get("config") or {}).items():
        set_path(config, key, value)
    values, secret_keys, file_problems = stack_values(config)
    for key, value in (case.get("secrets") or {}).items():
        values[key] = value
        secret_keys.add(key)
    return case, values, secret_keys, file_problems


def _secret_strings(case) -> List[str]:
    found = []

    def walk(value):
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(case.get("secrets") or {})
    for key, value in (case.get("config") or {}).items():
        if any(s in key for s in ("Authkey", "ipsecKeys", "sshPrivateKey", "applicationKey", "applicationSecret",
                                  "consumerKey")):
            walk(value)
    return [s for s in found if len(s) >= 6 and not s.startswith("v1:")]


def test_there_are_enough_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_invalid_configuration(path):
    case, values, secret_keys, file_problems = load_case(path)
    expected = case["expect"]
    assert expected, "a case lists the problems it expects"
    problems = list(file_problems)
    try:
        parse_config(values, secret_keys)
    except SpecError as error:
        problems += list(error.problems)
    assert problems, "the configuration was accepted"
    shown = "\n".join(str(p) for p in problems)
    for item in expected:
        matching = [p for p in problems if p.key == item["key"]]
        assert matching, f"no problem reported for {item['key']}; got:\n{shown}"
        assert any(item["message"] in p.message for p in matching), \
            f"{item['key']}: expected wording {item['message']!r}; got:\n{shown}"
    assert len(problems) == len(expected), f"expected exactly {len(expected)} problem(s); got:\n{shown}"
    text = str(SpecError(problems))
    for secret in _secret_strings(case):
        assert secret not in text, "a secret value shows in the error message"
