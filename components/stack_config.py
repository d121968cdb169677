"""Read the stack's configuration as plain data for spec.parse_config, and hand secrets on as secrets."""
import json
from typing import Dict, Mapping, Set, Tuple

import pulumi
from pulumi.runtime import config as runtime_config

NAMESPACES = ("ovh-ha-cluster:", "ovh:")


def _decode(raw):
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def read() -> Tuple[Dict[str, object], Set[str]]:
    """All keys of our namespaces, objects decoded, and which of them were set with --secret.

    Pulumi.yaml gives optional keys an empty default ("" or {}); an empty value counts as not set.
    """
    env = runtime_config.get_config_env()
    values = {k: _decode(v) for k, v in env.items() if k.startswith(NAMESPACES)}
    values = {k: v for k, v in values.items() if v not in ("", {}, [], None)}
    secret_keys = {k for k in runtime_config.get_config_secret_keys_env() if k in values}
    return values, secret_keys


def secret(values: Mapping[str, object], key: str):
    """A secret config value as a secret Output (None when absent), so it stays encrypted downstream."""
    value = values.get(key)
    if value in (None, "", {}):
        return None
    return pulumi.Output.secret(value)
