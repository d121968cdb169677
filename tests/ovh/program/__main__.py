"""FailoverRouting (mode `resource`) or the FailoverIp component built from a stack file (mode `component`),
with credentials from the `ovh` namespace as in the real stack."""
import sys

import pulumi

config = pulumi.Config()
sys.path.insert(0, config.require("repo"))

ovh = pulumi.Config("ovh")
if config.get("backend") == "soapi":
    credentials = pulumi.Output.all(ovh.require_secret("nic"), ovh.require_secret("password")).apply(
        lambda v: {"nic": v[0], "password": v[1]})
else:
    credentials = pulumi.Output.all(ovh.require_secret("applicationKey"), ovh.require_secret("applicationSecret"),
                                    ovh.require_secret("consumerKey")).apply(
        lambda v: {"applicationKey": v[0], "applicationSecret": v[1], "consumerKey": v[2]})

if config.get("mode") == "component":
    import yaml

    from components.failover_ip import FailoverIp, FailoverIpArgs
    from components.spec import Concealed, parse_config

    with open(config.require("stackFile"), encoding="utf-8") as fh:
        values = {k: v for k, v in yaml.safe_load(fh)["config"].items()}
    values["ovh:endpoint"] = ovh.require("endpoint")
    secret_keys = {k for k, v in values.items() if isinstance(v, dict) and "secure" in v}
    for key in secret_keys | {"ovh:applicationKey", "ovh:applicationSecret", "ovh:consumerKey"}:
        values[key] = Concealed()   # given (as the secret Output below); the spec only checks presence
    spec = parse_config(values, secret_keys | {k for k in values if k.startswith("ovh:") and k != "ovh:endpoint"})
    fip = FailoverIp("fip", FailoverIpArgs(spec=spec, credentials=credentials, move_timeout=30))
    pulumi.export("routedTo", fip.routed_to)
    pulumi.export("activeNode", fip.active_node)
    pulumi.export("address", fip.address)
else:
    from components.ovh.routing import FailoverRouting

    routing = FailoverRouting(
        "failover-ip", ip=config.require("ip"), service=config.require("service"),
        fail_back=config.get_bool("failBack") or False, backend=config.get("backend") or "rest",
        endpoint=ovh.require("endpoint"), credentials=credentials, timeout=30,
        soapi=config.get_object("soapi") or None)
    pulumi.export("routedTo", routing.routed_to)
    pulumi.export("ipName", routing.ipName)
