"""ovh-ha-cluster: read the stack configuration, build the cluster, export what it looks like."""
import pulumi

from components import stack_config
from components.cluster import ClusterSecrets, HaCluster, HaClusterArgs
from components.spec import SpecError, parse_config

values, secret_keys = stack_config.read()
try:
    spec = parse_config(values, secret_keys)
except SpecError as error:
    # Every problem at once, before any resource is registered: nothing on a server is touched.
    raise pulumi.RunError(str(error)) from None
for warning in spec.warnings:
    pulumi.log.warn(warning)

secrets = ClusterSecrets(
    heartbeat_authkey=stack_config.secret(values, "ovh-ha-cluster:heartbeatAuthkey"),
    ipsec_keys={node: pulumi.Output.secret(key)
                for node, key in (values.get("ovh-ha-cluster:ipsecKeys") or {}).items()},
    ssh_private_key=stack_config.secret(values, "ovh-ha-cluster:sshPrivateKey"),
    agent_credentials=stack_config.agent_credentials(values, spec),
    ovh_credentials=stack_config.ovh_credentials(values),
)
cluster = HaCluster("cluster", HaClusterArgs(spec=spec, secrets=secrets))
for key, value in cluster.outputs.items():
    pulumi.export(key, value)
