"""Check a stack file without the Pulumi engine and without touching any server.

    python -m components.check_config Pulumi.<stack>.yaml

Prints every problem at once (and the warnings); exits 1 when there is a problem, 0 otherwise with a one-line
summary. Encrypted values (`{secure: ...}`) count as secrets that are set; their content cannot be checked
here, `pulumi preview` checks it.
"""
import argparse
import os
import sys
from typing import Any, Dict, List, Mapping, Set, Tuple

import yaml

from components.spec import CONCEALED, PROJECT, SECRET_KEYS, ClusterSpec, Problem, SpecError, parse_config


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


def _conceal(value: Any) -> Tuple[Any, int, int]:
    """The value with encrypted leaves replaced by CONCEALED, and the counts of encrypted and plain leaves."""
    if _is_secure(value):
        return CONCEALED, 1, 0
    if isinstance(value, Mapping):
        out, secure, plain = {}, 0, 0
        for k, v in value.items():
            out[k], s, p = _conceal(v)
            secure, plain = secure + s, plain + p
        return out, secure, plain
    if isinstance(value, list):
        items = [_conceal(v) for v in value]
        return [i[0] for i in items], sum(i[1] for i in items), sum(i[2] for i in items)
    return value, 0, 1


def stack_values(config: Mapping[str, Any]) -> Tuple[Dict[str, Any], Set[str], List[Problem]]:
    """A stack file's `config:` as parse_config takes it: (values, secret keys, problems of the file itself).

    A key counts as set with --secret when all its leaves are encrypted; a plain leaf makes it plain (so a
    secret key half-encrypted with `--path` is refused as plain, which it partly is)."""
    values: Dict[str, Any] = {}
    secret_keys: Set[str] = set()
    problems: List[Problem] = []
    for key, raw in config.items():
        key = str(key)
        value, secure, plain = _conceal(raw)
        if secure and not plain:
            secret_keys.add(key)
            if key not in SECRET_KEYS and key.startswith((f"{PROJECT}:", "ovh:")):
                problems.append(Problem(key, "is encrypted in the stack file but is not a secret; set it without "
                                             "--secret so that it can be checked"))
                continue
        elif secure and plain and key not in SECRET_KEYS:
            problems.append(Problem(key, "is partly encrypted but is not a secret; set it without --secret"))
            continue
        values[key] = value
    return values, secret_keys, problems


def check(path: str) -> Tuple[ClusterSpec, List[str]]:
    """The spec and its warnings; raises SpecError (every problem) or OSError/yaml.YAMLError (unreadable)."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, Mapping):
        raise SpecError([Problem("(file)", "expected a YAML mapping with a `config:` section")])
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise SpecError([Problem("config", "expected a mapping of `<namespace>:<key>: value` entries")])
    values, secret_keys, file_problems = stack_values(config)
    try:
        spec = parse_config(values, secret_keys)
    except SpecError as error:
        raise SpecError(file_problems + list(error.problems)) from None
    if file_problems:
        raise SpecError(file_problems)
    return spec, list(spec.warnings)


def summary(spec: ClusterSpec) -> str:
    a, b = spec.nodes
    fip = spec.failover_ip
    parts = [f"nodes {a.name} ({a.address}) + {b.name} ({b.address})",
             f"failover IP {fip.address} on {fip.initial_node}",
             f"DRBD {spec.drbd.resource} on {spec.drbd.mount_point}" if spec.drbd.enabled else "DRBD off",
             (f"IPsec {spec.ipsec.aead or spec.ipsec.encryption + '+' + spec.ipsec.authentication}"
              if spec.ipsec.enabled else "IPsec off"),
             "firewall on" if spec.firewall.enabled else "firewall off"]
    return ", ".join(parts)


def _resolve(argument: str) -> str:
    """Accept a stack name as well as a file name: `prod` means Pulumi.prod.yaml."""
    if not os.path.exists(argument) and os.sep not in argument and not argument.endswith((".yaml", ".yml")):
        return f"Pulumi.{argument}.yaml"
    return argument


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.check_config",
                                     description="Validate a Pulumi stack file of ovh-ha-cluster, offline.")
    parser.add_argument("stack_file", help="Pulumi.<stack>.yaml (or just the stack name)")
    args = parser.parse_args(argv)
    path = _resolve(args.stack_file)
    try:
        spec, warnings = check(path)
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return 1
    except yaml.YAMLError as error:
        print(f"{path}: not valid YAML: {error}", file=sys.stderr)
        return 1
    except SpecError as error:
        print(f"{path}: {error}")
        return 1
    for warning in warnings:
        print(f"{path}: warning: {warning}")
    count = len(warnings)
    print(f"{path}: OK: {summary(spec)}" + (f" ({count} warning{'s' if count != 1 else ''})" if count else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
