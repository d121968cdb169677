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


def agent_credentials(values: Mapping[str, object], spec):
    """python-ovh's ovh.conf for the node agent (secret): the application's key and secret with the agent's
    own consumer key. None when that key is not set (spec warns)."""
    from components.render.agent import credentials_file

    consumer = values.get("ovh-ha-cluster:agentConsumerKey")
    if consumer in (None, ""):
        return None
    endpoint = spec.ovh_api.endpoint   # validated and required by spec.parse_config
    parts = pulumi.Output.all(values.get("ovh:applicationKey"), values.get("ovh:applicationSecret"), consumer)
    return pulumi.Output.secret(parts.apply(lambda p: credentials_file(endpoint, p[0] or "", p[1] or "", p[2])))


OVH_KEYS = ("applicationKey", "applicationSecret", "consumerKey")


def ovh_credentials(values: Mapping[str, object]):
    """The operator's OVH API credentials as one secret; None leaves python-ovh to its OVH_* variables or
    ovh.conf."""
    if not all(values.get(f"ovh:{k}") for k in OVH_KEYS):
        return None
    return pulumi.Output.secret({k: values[f"ovh:{k}"] for k in OVH_KEYS})
