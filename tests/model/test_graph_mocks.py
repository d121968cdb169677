"""The resource graph of HaCluster under Pulumi's mocks: parents, dependencies, and which values are secret.

Nothing is deployed here (the engine tests and the lab do that); these check the wiring a reviewer would
otherwise have to read from the code: every remote resource sits under the component of its concept, the
order a sysadmin follows is expressed as dependencies, and key material is secret wherever it flows.
"""
import asyncio
from collections import defaultdict

import pulumi
import pytest

from components import stack_config
from components.cluster import ClusterSecrets, HaCluster, HaClusterArgs
from tests.model.support import stack


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.name.endswith("-host-key"):
            outputs.update(hostKey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmockmockmockmockmockmockmockmockmockmockmo",
                           fingerprint="SHA256:mock")
        if args.typ.endswith("GeneratedSecret"):
            outputs["value"] = "00" * int(args.inputs["length"])
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class Recorder:
    """Every registration as the engine would see it: type, name, parent, depends_on, secret outputs, props."""

    def __init__(self):
        self.rows = {}

    def __call__(self, args: pulumi.ResourceTransformationArgs):
        opts = args.opts
        self.rows[args.name] = {
            "type": args.type_, "parent": opts.parent, "depends_on": list(opts.depends_on or []),
            "secret_outputs": list(opts.additional_secret_outputs or []), "props": args.props,
            "resource": args.resource,
        }
        return None


def build(name="tutorial"):
    spec, values, secret_keys = stack(name)
    pulumi.runtime.set_mocks(Mocks(), preview=False)
    recorder = Recorder()
    pulumi.runtime.register_stack_transformation(recorder)
    secrets = ClusterSecrets(
        heartbeat_authkey=stack_config.secret(values, "ovh-ha-cluster:heartbeatAuthkey"),
        ipsec_keys={n: pulumi.Output.secret(k) for n, k in (values.get("ovh-ha-cluster:ipsecKeys") or {}).items()},
        ssh_private_key=stack_config.secret(values, "ovh-ha-cluster:sshPrivateKey"),
        agent_credentials=stack_config.agent_credentials(values, spec),
    )
    cluster = HaCluster("cluster", HaClusterArgs(spec=spec, secrets=secrets))
    return spec, values, cluster, recorder.rows


def resolve(output):
    """(value, is_secret) of an Output under the mocks."""
    async def both():
        return await output.future(), await output.is_secret()
    return asyncio.get_event_loop().run_until_complete(both())


def name_of(resource):
    return resource._name


@pytest.fixture(scope="module")
def graph():
    return build()


@pulumi.runtime.test
def test_every_resource_hangs_under_the_component_of_its_concept(graph):
    spec, _, cluster, rows = graph
    parents = {name: name_of(row["parent"]) if row["parent"] else None for name, row in rows.items()}
    assert parents["cluster"] is None
    for component in ("ns11111", "ns22222", "cluster-ipsec", "cluster-firewall", "cluster-drbd",
                      "cluster-failover-ip", "cluster-alerts", "cluster-heartbeat"):
        assert parents[component] == "cluster", component
    by_type = defaultdict(set)
    for name, row in rows.items():
        by_type[row["type"].split(":")[-1]].add(name)
        if row["type"].startswith("pulumi-python:dynamic/remote:"):
            parent = parents[name]
            assert parent in ("ns11111", "ns22222") or parent.startswith("cluster-"), (name, parent)
            expected_parent = {"HostKey": "node", "PackageSet": "node"}.get(row["type"].split(":")[-1])
            if expected_parent == "node":
                assert parent in ("ns11111", "ns22222"), name
    for node in ("ns11111", "ns22222"):
        assert parents[f"cluster-heartbeat-{node}-ha-cf"] == "cluster-heartbeat"
        assert parents[f"cluster-ipsec-{node}-xfrm"] == "cluster-ipsec"
        assert parents[f"cluster-firewall-{node}-table"] == "cluster-firewall"
        assert parents[f"cluster-drbd-{node}-resource"] == "cluster-drbd"
    assert by_type["XfrmSet"] == {"cluster-ipsec-ns11111-xfrm", "cluster-ipsec-ns22222-xfrm"}
    assert len(by_type["HostKey"]) == 2 and len(by_type["PackageSet"]) == 2
    # the type tokens of our components
    assert {rows[c]["type"] for c in ("cluster", "ns11111", "cluster-ipsec", "cluster-heartbeat")} == {
        "ovh-ha:cluster:HaCluster", "ovh-ha:node:Node", "ovh-ha:ipsec:IpsecLink", "ovh-ha:heartbeat:HeartbeatGroup"}


@pulumi.runtime.test
def test_the_build_order_is_expressed_as_dependencies(graph):
    _, _, _, rows = graph

    def deps(name):
        return {name_of(r) for r in rows[name]["depends_on"]}

    assert deps("cluster-ipsec") == {"ns11111", "ns22222"}
    assert deps("cluster-drbd") == {"ns11111", "ns22222", "cluster-ipsec"}          # the link before DRBD
    assert deps("cluster-firewall") == {"ns11111", "ns22222", "cluster-ipsec"}
    assert deps("cluster-heartbeat") >= {"cluster-ipsec", "cluster-drbd", "cluster-failover-ip",
                                         "cluster-firewall", "cluster-alerts"}        # the group last
    for node in ("ns11111", "ns22222"):
        assert deps(f"{node}-packages") == {f"{node}-host-key"}
        # every file of a node waits for its host key and packages; the daemon waits for its files
        assert deps(f"cluster-heartbeat-{node}-ha-cf") == {f"{node}-host-key", f"{node}-packages"}
        assert deps(f"cluster-heartbeat-{node}-heartbeat") >= {
            f"cluster-heartbeat-{node}-ha-cf", f"cluster-heartbeat-{node}-authkeys",
            f"cluster-heartbeat-{node}-haresources", f"cluster-heartbeat-{node}-agent",
            f"cluster-heartbeat-{node}-agent-credentials"}
        assert deps(f"cluster-firewall-{node}-table") == {f"cluster-firewall-{node}-ruleset"}
        # DRBD comes up only once its configuration is on the node; one initial primary for the first sync
        assert deps(f"cluster-drbd-{node}-disk") == {f"cluster-drbd-{node}-global", f"cluster-drbd-{node}-resource"}
    assert [rows[f"cluster-drbd-{n}-disk"]["props"]["initialPrimary"] for n in ("ns11111", "ns22222")] == [True, False]
    # Heartbeat is (re)started one node after the other, never both at once
    assert "cluster-heartbeat-ns11111-heartbeat" in deps("cluster-heartbeat-ns22222-heartbeat")


def test_key_material_is_secret_wherever_it_flows(graph):
    """Not under pulumi.runtime.test: it drives the mocks' event loop itself to read values and secretness."""
    _, values, cluster, rows = graph
    for node in ("ns11111", "ns22222"):
        authkeys = rows[f"cluster-heartbeat-{node}-authkeys"]
        assert {"content", "sha256", "observed", "sshPrivateKey"} <= set(authkeys["secret_outputs"])
        content, secret = resolve(authkeys["props"]["content"])
        assert secret and "sha1" in content
        creds = rows[f"cluster-heartbeat-{node}-agent-credentials"]
        content, secret = resolve(creds["props"]["content"])
        assert secret and values["ovh-ha-cluster:agentConsumerKey"] in content
        assert values["ovh:consumerKey"] not in content, "the node agent must not get the operator's key"
        keys, secret = resolve(rows[f"cluster-ipsec-{node}-xfrm"]["props"]["keys"])
        assert secret and set(keys) and all(v.startswith("0x") for v in keys.values())
        key, secret = resolve(rows[f"{node}-packages"]["props"]["sshPrivateKey"])
        assert secret and "PRIVATE KEY" in key
        # plain, readable inputs: the xfrm commands carry placeholders, never a key
        commands = rows[f"cluster-ipsec-{node}-xfrm"]["props"]["commands"]
        flat = " ".join(w for argv in commands for w in argv)
        assert "@KEY:" in flat and not any(v[2:] in flat for v in keys.values())
        ha_cf, secret = resolve(rows[f"cluster-heartbeat-{node}-ha-cf"]["props"]["content"])
        assert not secret and "ucast" in ha_cf
    spis, secret = resolve(pulumi.Output.from_input(cluster.outputs["ipsecSpis"]))
    assert not secret and set(spis) == {"ns11111", "ns22222"}
    authkeys, secret = resolve(cluster.heartbeat.authkeys)
    assert secret
