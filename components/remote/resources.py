"""Stateful remote resources: Pulumi dynamic providers whose `read` probes the server over SSH.

Each resource keeps what it observed after its last change under the `observed` output. `pulumi refresh`
re-probes, so a hand edit shows up as a change of that output; the next `diff` compares the declared state
with it and `update` applies only the plan for the difference (components.remote.plans).

Every resource takes `connection` (node, host, port, user, keyFile: plain), `hostKey` (the key recorded by
HostKey, so each login checks it) and `sshPrivateKey` (secret, or None when keyFile is used). Providers
hold no state of their own: everything they need comes in the properties, so nothing secret is pickled.
"""
import hashlib
from typing import Any, Dict, List, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

CONN_KEYS = ("connection", "hostKey", "sshPrivateKey")
HEARTBEAT_PIDFILE = "/run/heartbeat.pid"  # Debian's; its init script's `status` says 0 even when it cannot run


def _session(props: dict):
    from components.remote import ssh

    target = ssh.Target.from_props(props["connection"], host_key=props.get("hostKey"))
    return ssh.session(target, props.get("sshPrivateKey"))


def _fail(props: dict, what: str, error: Exception):
    """Errors name the node and the resource; secrets never reach a message (they are not in errors)."""
    from components.remote.ssh import RemoteError

    node = props.get("connection", {}).get("node", "?")
    text = str(error)
    if isinstance(error, RemoteError) and text.startswith(node):
        raise RemoteError(f"{what}: {text}") from None
    raise RemoteError(f"{node}: {what}: {text}") from None


def _execute(sess, steps: List[dict], files: Optional[Dict[str, bytes]] = None,
             fill: Optional[Dict[str, str]] = None) -> None:
    for step in steps:
        if "run" in step:
            sess.check(step["run"])
        elif "put" in step:
            sess.put(step["put"], files[step["put"]], int(step["mode"], 8), step["owner"], step["group"])
        elif "batch" in step:
            text = "".join(line + "\n" for line in step["batch"])
            for placeholder, value in (fill or {}).items():
                text = text.replace(placeholder, value)
            sess.check("ip -batch -", stdin=text.encode(), what="ip -batch (xfrm)")


def _probe(sess, fact: str, *args):
    from components.remote import facts

    result = sess.run(facts.command_for(fact, *args))
    return facts.parse(fact, result.status, result.lines)


def _moved(olds: dict, news: dict) -> bool:
    """Another server entirely: only then is a resource replaced (a new port or key file is just an update)."""
    return (olds.get("connection") or {}).get("node") != (news.get("connection") or {}).get("node")


def _changed(olds: dict, news: dict, keys) -> List[str]:
    return [k for k in keys if olds.get(k) != news.get(k)]


OUTPUT_KEYS = ("observed", "sha256", "applied", "drift")


def _without_drift(props: dict) -> dict:
    """Outputs never carry `drift`: it is an input that only `read` sets, and `up` clears."""
    return {k: v for k, v in props.items() if k != "drift"}


def _refreshed(id_, props: dict, observed, drift: Optional[str], extra: Optional[dict] = None) -> ReadResult:
    """What `pulumi refresh` records: the observed facts as outputs, and, when the server drifted, a `drift`
    input that says how; the next plan then shows it as a property going away, i.e. what `up` will undo."""
    outs = {**_without_drift(props), **(extra or {})}
    outs["observed"] = observed
    inputs = {k: v for k, v in props.items() if k not in OUTPUT_KEYS}
    if drift:
        inputs["drift"] = drift
    return ReadResult(id_=id_, outs=outs, inputs=inputs)


class _Remote(Resource):
    """Common wiring: connection properties, secret outputs, and a readable type name."""

    def __init__(self, provider, name: str, props: dict, node, secret_outputs=(), opts=None):
        conn = {"connection": node.connection, "hostKey": node.host_key, "sshPrivateKey": node.ssh_private_key}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["sshPrivateKey", *secret_outputs]))
        super().__init__(provider, name, {**conn, **props, "observed": None}, opts)


# -- host key -----------------------------------------------------------------------------------------------

class _HostKeyProvider(ResourceProvider):
    """Trust on first use, recorded in state; or the key the operator declared. Checked on every read."""

    def _scan(self, props: dict, expected: Optional[str]) -> str:
        from components.remote import ssh

        target = ssh.Target.from_props(props["connection"], host_key=expected)
        try:
            return ssh.session(target, props.get("sshPrivateKey")).presented_key
        except ssh.RemoteError as error:
            _fail(props, "SSH host key", error)

    def create(self, props):
        key = self._scan(props, props.get("declared"))
        outs = {**props, "hostKey": key, "fingerprint": _fp(key)}
        return CreateResult(id_=props["connection"]["node"], outs=outs)

    def read(self, id_, props):
        key = self._scan(props, props.get("hostKey"))
        return ReadResult(id_=id_, outs={**props, "hostKey": key, "fingerprint": _fp(key)})

    def diff(self, _id, olds, news):
        if _moved(olds, news):
            return DiffResult(changes=True, replaces=["connection"], delete_before_replace=True)
        changed = _changed(olds, news, ("declared", "connection"))
        return DiffResult(changes=bool(changed))

    def update(self, _id, olds, news):
        key = self._scan(news, news.get("declared") or olds.get("hostKey"))
        return UpdateResult(outs={**news, "hostKey": key, "fingerprint": _fp(key)})

    def delete(self, _id, _props):
        return None


def _fp(key: str) -> str:
    from components.remote.ssh import key_fingerprint

    return key_fingerprint(key)


class HostKey(Resource, module="remote", name="HostKey"):
    """The server's SSH host key as every other remote resource of this node will expect it."""

    hostKey: pulumi.Output[str]       # noqa: N815 - named as the output property
    fingerprint: pulumi.Output[str]

    def __init__(self, name: str, connection: dict, declared: Optional[str], ssh_private_key=None, opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["sshPrivateKey"]))
        super().__init__(_HostKeyProvider(), name,
                         {"connection": connection, "declared": declared, "sshPrivateKey": ssh_private_key,
                          "hostKey": None, "fingerprint": None}, opts)


# -- file ---------------------------------------------------------------------------------------------------

class _FileProvider(ResourceProvider):
    """One file: content (by SHA-256), mode, owner, group. Written atomically; removed on delete."""

    @staticmethod
    def _desired(props: dict) -> dict:
        content = props.get("content")
        digest = hashlib.sha256(content.encode()).hexdigest() if isinstance(content, str) else props.get("sha256")
        return {"path": props["path"], "mode": props["mode"], "owner": props["owner"], "group": props["group"],
                "sha256": digest}

    def _apply(self, props: dict) -> dict:
        from components.remote import plans

        sess = None
        try:
            sess = _session(props)
            fact = _probe(sess, "file", props["path"])
            steps = plans.plan_file(self._desired(props), fact)
            _execute(sess, steps, files={props["path"]: props["content"].encode()})
            return _probe(sess, "file", props["path"]) if steps else fact
        except Exception as error:  # noqa: BLE001 - re-raised with the node and the path
            _fail(props, f"file {props['path']}", error)

    def create(self, props):
        observed = self._apply(props)
        return CreateResult(id_=f"{props['connection']['node']}:{props['path']}", outs=self._outs(props, observed))

    @staticmethod
    def _outs(props, observed):
        outs = _without_drift(props)
        return {**outs, "sha256": hashlib.sha256(props["content"].encode()).hexdigest(), "observed": observed}

    def read(self, id_, props):
        from components.remote import plans

        try:
            observed = _probe(_session(props), "file", props["path"])
        except Exception as error:  # noqa: BLE001
            _fail(props, f"file {props['path']}", error)
        return _refreshed(id_, props, observed, plans.drift_file(self._desired(props), observed))

    def diff(self, _id, olds, news):
        if news.get("path") != olds.get("path") or _moved(olds, news):
            return DiffResult(changes=True, replaces=["path"] if news.get("path") != olds.get("path")
                              else ["connection"], delete_before_replace=True)
        observed = olds.get("observed")
        if not isinstance(news.get("content"), str):   # unknown during preview
            return DiffResult(changes=True)
        desired = self._desired(news)
        drift = observed is None or any(observed.get(k) != desired[k] for k in ("sha256", "mode", "owner", "group"))
        return DiffResult(changes=drift or bool(_changed(olds, news, ("hostKey", "connection"))))

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._outs(news, self._apply(news)))

    def delete(self, _id, props):
        from components.remote import plans

        if not props.get("removeOnDelete", True):
            return
        try:
            sess = _session(props)
            _execute(sess, plans.plan_file({"path": props["path"], "present": False},
                                           _probe(sess, "file", props["path"])))
        except Exception as error:  # noqa: BLE001
            _fail(props, f"removing {props['path']}", error)


class RemoteFile(_Remote, module="remote", name="RemoteFile"):
    """A file on a node. `secret=True` for key material: content, digest and observed facts stay secret in
    the state, and the content travels over SFTP into a 0600 temporary."""

    sha256: pulumi.Output[str]
    observed: pulumi.Output[Any]

    def __init__(self, name: str, node, path: str, content, mode: str = "0644", owner: str = "root",
                 group: str = "root", secret: bool = False, opts=None):
        if secret:
            content = pulumi.Output.secret(content)
        super().__init__(_FileProvider(), name,
                         {"path": path, "content": content, "mode": mode, "owner": owner, "group": group,
                          "sha256": None, "removeOnDelete": True},
                         node, secret_outputs=["content", "sha256", "observed"] if secret else (), opts=opts)


# -- service ------------------------------------------------------------------------------------------------

class _ServiceProvider(ResourceProvider):
    """A service's boot setting and run state; restarted when a file it depends on changed (`restartOn`)."""

    def _apply(self, props: dict, restart: bool, reload: bool = False) -> dict:
        from components.remote import plans

        try:
            sess = _session(props)
            fact = _probe(sess, "service", props["name"], props.get("pidfile"))
            steps = plans.plan_service({"name": props["name"], "enabled": props.get("enabled"),
                                        "running": props["running"]}, fact, restart=restart, reload=reload)
            _execute(sess, steps)
            return _probe(sess, "service", props["name"], props.get("pidfile")) if steps else fact
        except Exception as error:  # noqa: BLE001
            _fail(props, f"service {props['name']}", error)

    def create(self, props):
        observed = self._apply(props, restart=True)
        return CreateResult(id_=f"{props['connection']['node']}:{props['name']}", outs={**props, "observed": observed})


    def read(self, id_, props):
        from components.remote import plans

        try:
            observed = _probe(_session(props), "service", props["name"], props.get("pidfile"))
        except Exception as error:  # noqa: BLE001
            _fail(props, f"service {props['name']}", error)
        return _refreshed(id_, props, observed, plans.drift_service(props, observed))

    def diff(self, _id, olds, news):
        if news.get("name") != olds.get("name") or _moved(olds, news):
            return DiffResult(changes=True, replaces=["name"], delete_before_replace=True)
        observed = olds.get("observed") or {}
        drift = (observed.get("running") != news["running"]
                 or (news.get("enabled") is not None and observed.get("enabled") != news["enabled"]))
        return DiffResult(changes=drift or bool(_changed(olds, news, ("restartOn", "reloadOn", "hostKey", "connection"))))

    def update(self, _id, olds, news):
        restart = olds.get("restartOn") != news.get("restartOn")
        reload = olds.get("reloadOn") != news.get("reloadOn")
        outs = _without_drift(news)
        return UpdateResult(outs={**outs, "observed": self._apply(news, restart=restart, reload=reload)})

    def delete(self, _id, props):
        from components.remote import plans

        if not props.get("stopOnDelete", True):
            return
        try:
            sess = _session(props)
            fact = _probe(sess, "service", props["name"], props.get("pidfile"))
            if fact["installed"]:
                _execute(sess, plans.plan_service({"name": props["name"], "enabled": False, "running": False}, fact))
        except Exception as error:  # noqa: BLE001
            _fail(props, f"stopping {props['name']}", error)


class Service(_Remote, module="remote", name="Service"):
    observed: pulumi.Output[Any]

    def __init__(self, name: str, node, service: str, running: bool = True, enabled: Optional[bool] = True,
                 restart_on: Optional[List] = None, reload_on: Optional[List] = None,
                 pidfile: Optional[str] = None, stop_on_delete: bool = True, opts=None):
        super().__init__(_ServiceProvider(), name,
                         {"name": service, "running": running, "enabled": enabled, "pidfile": pidfile,
                          "restartOn": restart_on or [], "reloadOn": reload_on or [],
                          "stopOnDelete": stop_on_delete},
                         node, opts=opts)


# -- packages -----------------------------------------------------------------------------------------------

class _PackagesProvider(ResourceProvider):
    """Debian packages that must be installed. Never removed by us: other software may need them."""

    def _apply(self, props: dict) -> dict:
        from components.remote import plans

        try:
            sess = _session(props)
            fact = _probe(sess, "packages", props["names"])
            steps = plans.plan_packages(props["names"], fact)
            _execute(sess, steps)
            return _probe(sess, "packages", props["names"]) if steps else fact
        except Exception as error:  # noqa: BLE001
            _fail(props, "packages", error)

    def _outs(self, props, fact):
        outs = _without_drift(props)
        return {**outs, "observed": {n: fact.get(n) for n in sorted(props["names"])}}

    def create(self, props):
        return CreateResult(id_=f"{props['connection']['node']}:packages", outs=self._outs(props, self._apply(props)))

    def read(self, id_, props):
        from components.remote import plans

        try:
            fact = _probe(_session(props), "packages", props["names"])
        except Exception as error:  # noqa: BLE001
            _fail(props, "packages", error)
        return _refreshed(id_, props, {n: fact.get(n) for n in sorted(props["names"])},
                          plans.drift_packages(props["names"], fact))

    def diff(self, _id, olds, news):
        observed = olds.get("observed") or {}
        missing = [n for n in news.get("names") or [] if not observed.get(n)]
        return DiffResult(changes=bool(missing) or bool(_changed(olds, news, ("names", "connection", "hostKey"))))

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._outs(news, self._apply(news)))

    def delete(self, _id, _props):
        return None   # packages stay installed: removing them could break what else runs on the server


class PackageSet(_Remote, module="remote", name="PackageSet"):
    observed: pulumi.Output[Any]

    def __init__(self, name: str, node, names: List[str], opts=None):
        super().__init__(_PackagesProvider(), name, {"names": sorted(set(names))}, node, opts=opts)


# -- xfrm ---------------------------------------------------------------------------------------------------

class _XfrmProvider(ResourceProvider):
    """One node's SAs and policies. Compared by SA id, algorithms and key fingerprint; keys reach the
    kernel only through `ip -batch -` on stdin. Other xfrm entries on the server are left alone."""

    @staticmethod
    def _desired(props):
        from components.remote import plans

        return plans.desired_xfrm(props["commands"], props.get("keys") or {})

    @staticmethod
    def _placeholders(props):
        from components.remote import plans

        bare = plans.desired_xfrm(props["commands"], None)
        return {f"{s['spi']}:{a['kind']}": a["key"] for s in bare["states"] for a in s["algorithms"]}

    def _observe(self, sess, props, previously=None):
        from components.remote import plans

        return plans.owned_entries(_probe(sess, "xfrm"), self._desired(props), previously)

    def _apply(self, props, previously=None):
        from components.remote import plans

        try:
            sess = _session(props)
            observed = self._observe(sess, props, previously)
            steps = plans.plan_xfrm(self._desired(props), observed, self._placeholders(props))
            _execute(sess, steps, fill=props.get("keys") or {})
            return self._observe(sess, props, previously) if steps else observed
        except Exception as error:  # noqa: BLE001
            _fail(props, "xfrm states and policies", error)

    def create(self, props):
        return CreateResult(id_=f"{props['connection']['node']}:xfrm", outs={**props, "observed": self._apply(props)})

    def read(self, id_, props):
        from components.remote import plans

        try:
            observed = self._observe(_session(props), props, props.get("observed"))
        except Exception as error:  # noqa: BLE001
            _fail(props, "xfrm states and policies", error)
        return _refreshed(id_, props, observed, plans.drift_xfrm(self._desired(props), observed))

    def diff(self, _id, olds, news):
        if not isinstance(news.get("keys"), dict) or not isinstance(news.get("commands"), list):
            return DiffResult(changes=True)
        return DiffResult(changes=olds.get("observed") != self._desired(news)
                          or bool(_changed(olds, news, ("connection", "hostKey"))))

    def update(self, _id, olds, news):
        outs = _without_drift(news)
        return UpdateResult(outs={**outs, "observed": self._apply(news, olds.get("observed"))})

    def delete(self, _id, props):
        from components.remote import plans

        try:
            sess = _session(props)
            _execute(sess, plans.remove_xfrm(self._observe(sess, props, props.get("observed"))))
        except Exception as error:  # noqa: BLE001
            _fail(props, "removing xfrm states and policies", error)


class XfrmSet(_Remote, module="remote", name="XfrmSet"):
    """`commands`: `ip xfrm ... add` argv lists with key placeholders (components.render.ipsec);
    `keys`: secret {placeholder: 0xhex}."""

    observed: pulumi.Output[Any]

    def __init__(self, name: str, node, commands: List[List[str]], keys, opts=None):
        super().__init__(_XfrmProvider(), name, {"commands": commands, "keys": pulumi.Output.secret(keys)},
                         node, opts=opts)


# -- applied configuration ----------------------------------------------------------------------------------

class _AppliedProvider(ResourceProvider):
    """A configuration loaded by a command (e.g. `nft -f FILE`) whose effect a listing command shows. The
    listing's digest is recorded after applying; a different digest later means someone changed it."""

    def _apply(self, props):
        try:
            sess = _session(props)
            sess.check(props["apply"])
            return _probe(sess, "listing", props["probe"])
        except Exception as error:  # noqa: BLE001
            _fail(props, props.get("description") or props["apply"], error)

    def create(self, props):
        observed = self._apply(props)
        return CreateResult(id_=f"{props['connection']['node']}:{props['description']}",
                            outs={**props, "observed": observed, "applied": observed})

    def read(self, id_, props):
        from components.remote import plans

        try:
            observed = _probe(_session(props), "listing", props["probe"])
        except Exception as error:  # noqa: BLE001
            _fail(props, props.get("description") or props["probe"], error)
        return _refreshed(id_, props, observed, plans.drift_applied(props.get("applied"), observed),
                          extra={"applied": props.get("applied")})

    def diff(self, _id, olds, news):
        from components.remote import plans

        changed = _changed(olds, news, ("apply", "probe", "triggers", "connection", "hostKey"))
        steps = plans.plan_applied(news.get("apply"), olds.get("applied"), olds.get("observed"), bool(changed))
        return DiffResult(changes=bool(steps))

    def update(self, _id, _olds, news):
        observed = self._apply(news)
        outs = _without_drift(news)
        return UpdateResult(outs={**outs, "observed": observed, "applied": observed})

    def delete(self, _id, props):
        if not props.get("remove"):
            return
        try:
            _session(props).check(props["remove"])
        except Exception as error:  # noqa: BLE001
            _fail(props, f"removing {props.get('description')}", error)


class Applied(_Remote, module="remote", name="Applied"):
    observed: pulumi.Output[Optional[str]]

    def __init__(self, name: str, node, description: str, apply: str, probe: str, remove: Optional[str] = None,
                 triggers: Optional[List] = None, opts=None):
        super().__init__(_AppliedProvider(), name,
                         {"description": description, "apply": apply, "probe": probe, "remove": remove,
                          "triggers": triggers or [], "applied": None}, node, opts=opts)


# -- hand-over ----------------------------------------------------------------------------------------------

class _HandOverProvider(ResourceProvider):
    """Where Heartbeat runs the resource group, seen from the preferred node (the `group` fact: its resource
    script's status). With failBack, `up` asks Heartbeat on that node to take the group back (`hb_takeover`):
    Heartbeat releases it on the peer and starts it here, and the resource script moves the IP at OVH.
    Nothing is moved behind Heartbeat's back. Without failBack it only observes."""

    @staticmethod
    def _group(sess, props) -> dict:
        return _probe(sess, "group", props["script"], props["ip"], props["interface"])

    def _observe(self, props) -> dict:
        try:
            return self._group(_session(props), props)
        except Exception as error:  # noqa: BLE001
            _fail(props, "reading where the resource group runs", error)

    @staticmethod
    def _drift(props, observed) -> Optional[str]:
        if props.get("failBack") is True and observed and not observed.get("holds"):
            node = props["connection"]["node"]
            return (f"the resource group runs elsewhere than {node}; failBack is true, so `up` asks Heartbeat on "
                    f"{node} to take it back (hb_takeover), which moves the failover IP")
        return None

    def create(self, props):
        return CreateResult(id_=f"{props['connection']['node']}:hand-over", outs={**props, "observed": self._observe(props)})

    def read(self, id_, props):
        observed = self._observe(props)
        return _refreshed(id_, props, observed, self._drift(props, observed))

    def diff(self, _id, olds, news):
        changed = _changed(olds, news, ("failBack", "script", "ip", "interface", "takeover", "timeout", "connection",
                                        "hostKey"))
        if news.get("failBack") is True:
            observed = self._observe({**news, "sshPrivateKey": news.get("sshPrivateKey") or olds.get("sshPrivateKey")})
            drift = self._drift(news, observed)
            if drift:
                pulumi.log.info(f"{news['connection']['node']}: {drift}")
                return DiffResult(changes=True)
        return DiffResult(changes=bool(changed) or bool(olds.get("drift")))

    def update(self, _id, olds, news):
        import time

        node = news["connection"]["node"]
        try:
            sess = _session(news)
            observed = self._group(sess, news)
            if news.get("failBack") is True and not observed["holds"]:
                if not _probe(sess, "service", "heartbeat", HEARTBEAT_PIDFILE)["running"]:
                    raise RuntimeError("Heartbeat is not running here, so it cannot take the group back; start it "
                                       "(`pulumi up` does) and run `up` again")
                pulumi.log.info(f"{node}: failBack: asking Heartbeat to take the resource group back (hb_takeover)")
                sess.check(news["takeover"], what="hb_takeover")
                deadline = time.monotonic() + float(news.get("timeout") or 300)
                while not observed["holds"]:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Heartbeat did not bring the group here within {news.get('timeout')} s "
                                           "after hb_takeover; see its log on both nodes")
                    time.sleep(0.5)
                    observed = self._group(sess, news)
                pulumi.log.info(f"{node}: the resource group and the failover IP are back here")
            return UpdateResult(outs={**_without_drift(news), "observed": observed})
        except Exception as error:  # noqa: BLE001
            _fail(news, "handing the resource group back", error)

    def delete(self, _id, _props):
        return


class HandOver(_Remote, module="remote", name="HandOver"):
    observed: pulumi.Output[Any]

    def __init__(self, name: str, node, script: str, ip: str, interface: str, takeover: str, fail_back: bool,
                 timeout: float, opts=None):
        super().__init__(_HandOverProvider(), name,
                         {"script": script, "ip": ip, "interface": interface, "takeover": takeover,
                          "failBack": fail_back, "timeout": timeout}, node, opts=opts)


# -- drbd ---------------------------------------------------------------------------------------------------

class _DrbdProvider(ResourceProvider):
    """One node's side of a DRBD resource: module, metadata (created once), up, connected; the initial sync
    and filesystem from the declared initial primary. Its outputs report role, disk and connection state."""

    PASSES = 8            # steps towards the declared state in one apply
    WAIT_PASSES = 60      # probes, 1 s apart, for the peer to connect before the initial sync

    def _apply(self, props):
        import time as _time

        from components.remote import plans

        desired = {"resource": props["resource"], "device": props["device"], "fsType": props.get("fsType"),
                   "initialPrimary": props.get("initialPrimary")}
        try:
            sess = _session(props)
            promoted, passes, waits = False, 0, 0
            while True:
                fact = _probe(sess, "drbd", props["resource"], props["device"])
                steps = plans.plan_drbd(desired, fact, promoted_here=promoted)
                if not steps:
                    waiting = (desired["initialPrimary"] and fact["up"] and fact["cstate"] != "Connected"
                               and fact["disk"] == "Inconsistent")
                    if waiting and waits < self.WAIT_PASSES:
                        waits += 1
                        _time.sleep(1)
                        continue
                    return fact
                passes += 1
                if passes > self.PASSES:
                    raise RuntimeError(f"DRBD resource {props['resource']} did not settle after {self.PASSES} steps "
                                       f"(last state: {fact})")
                _execute(sess, steps)
                promoted = promoted or any("primary --force" in step.get("run", "") for step in steps)
        except Exception as error:  # noqa: BLE001
            _fail(props, f"DRBD resource {props['resource']}", error)

    def create(self, props):
        return CreateResult(id_=f"{props['connection']['node']}:drbd:{props['resource']}",
                            outs={**props, "observed": self._apply(props)})

    def read(self, id_, props):
        from components.remote import plans

        try:
            fact = _probe(_session(props), "drbd", props["resource"], props["device"])
        except Exception as error:  # noqa: BLE001
            _fail(props, f"DRBD resource {props['resource']}", error)
        return _refreshed(id_, props, fact, plans.drift_drbd(fact))

    def diff(self, _id, olds, news):
        from components.remote import plans

        if news.get("resource") != olds.get("resource") or _moved(olds, news):
            return DiffResult(changes=True, replaces=["resource"], delete_before_replace=True)
        observed = olds.get("observed") or {"loaded": False, "up": False, "metadata": False}
        desired = {"resource": news["resource"], "device": news["device"], "fsType": news.get("fsType"),
                   "initialPrimary": news.get("initialPrimary")}
        try:
            pending = bool(plans.plan_drbd(desired, {**_EMPTY_DRBD, **observed}))
        except KeyError:
            pending = True
        except plans.PlanError:
            # e.g. a split brain: `refresh --run-program` diffs too and must still record it; `up` refuses in
            # update, before any DRBD command, and the plan shows why through the drift
            pending = True
        return DiffResult(changes=pending or bool(_changed(olds, news, ("device", "connection", "hostKey"))))

    def update(self, _id, _olds, news):
        outs = _without_drift(news)
        return UpdateResult(outs={**outs, "observed": self._apply(news)})

    def delete(self, _id, props):
        """Take a Secondary down; leave a Primary as it is (Heartbeat's, maybe mounted). Metadata and data stay."""
        try:
            sess = _session(props)
            fact = _probe(sess, "drbd", props["resource"], props["device"])
            if fact["up"] and fact["role"] == "Secondary":
                sess.check(f"drbdadm down {props['resource']}")
        except Exception as error:  # noqa: BLE001
            _fail(props, f"taking DRBD resource {props['resource']} down", error)


_EMPTY_DRBD = {"loaded": False, "version": None, "up": False, "cstate": None, "role": None, "peerRole": None,
               "disk": None, "peerDisk": None, "metadata": False, "filesystem": None, "mounted": False}


class DrbdDisk(_Remote, module="remote", name="DrbdDisk"):
    observed: pulumi.Output[Any]

    def __init__(self, name: str, node, resource: str, device: str, initial_primary: bool,
                 fs_type: Optional[str], opts=None):
        super().__init__(_DrbdProvider(), name,
                         {"resource": resource, "device": device, "initialPrimary": initial_primary,
                          "fsType": fs_type}, node, opts=opts)
