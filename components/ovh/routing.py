"""FailoverRouting: where OVH routes a failover IP, as a Pulumi resource (a Python dynamic provider).

`create` routes the IP to the declared service and waits for the move; `read` (pulumi refresh) records
where OVH routes it now, so a failover shows; `up` afterwards moves it back only when failBack is true,
since Heartbeat owns runtime placement; `delete` moves nothing. The operations are in routing_ops.

Pulumi pickles the provider (dill) into the state and runs it in the engine's provider process, which may
not have this repository on its import path (a program run from a copy, a state refreshed from elsewhere).
So the provider class is built inside a function, which makes dill carry it by value, and it only holds the
directory `components` was imported from; each method puts that directory on sys.path, then imports
routing_ops. Credentials are never part of the provider: they are secret inputs, kept secret in the state.
"""
import os
from typing import Any, Mapping, Optional

import pulumi
import pulumi.dynamic

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _provider_class():
    """The provider class, defined here so that dill pickles it by value (see the module docstring)."""
    from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

    class FailoverRoutingProvider(pulumi.dynamic.ResourceProvider):
        serialize_as_secret_always = True

        def __init__(self, root: str):
            self.root = root

        def _ops(self):
            import importlib
            import os as _os
            import sys as _sys
            if _os.path.isdir(_os.path.join(self.root, "components")) and self.root not in _sys.path:
                _sys.path.insert(0, self.root)
            return importlib.import_module("components.ovh.routing_ops")

        @staticmethod
        def _log(message: str) -> None:
            import pulumi as _pulumi
            _pulumi.log.info(message)

        def check(self, olds, news):
            failures = self._ops().check(news)
            return CheckResult(news, [CheckFailure(p, r) for p, r in failures])

        def create(self, props):
            id_, outs = self._ops().create(props, self._log)
            return CreateResult(id_, outs)

        def read(self, id_, props):
            outs, inputs = self._ops().read(id_, props, self._log)
            return ReadResult(id_, outs, inputs)

        def diff(self, id_, olds, news):
            ops = self._ops()
            observe = ops.where_routed if news.get("failBack") is True else None
            result = ops.diff(olds, news, observe)
            if result["message"]:
                self._log(result["message"])
            return DiffResult(changes=bool(result["changes"]), replaces=result["replaces"],
                              delete_before_replace=bool(result["replaces"]) or None)

        def update(self, id_, olds, news):
            return UpdateResult(self._ops().update(olds, news, self._log))

        def delete(self, id_, props):
            self._ops().delete(props, self._log)

    return FailoverRoutingProvider


class FailoverRouting(pulumi.dynamic.Resource, module="ovh", name="FailoverRouting"):
    """Outputs: routedTo (the service OVH routes the IP to, as last read), ipName ("203.0.113.10/32"),
    activeNode (the node of `nodes` whose service that is)."""

    routedTo: pulumi.Output[str]
    ipName: pulumi.Output[str]
    activeNode: pulumi.Output[Optional[str]]

    def __init__(self, name: str, *, ip: pulumi.Input[str], service: pulumi.Input[str],
                 fail_back: pulumi.Input[bool] = False, backend: pulumi.Input[str] = "rest",
                 endpoint: Optional[pulumi.Input[str]] = None,
                 credentials: Optional[pulumi.Input[Mapping[str, str]]] = None,
                 timeout: pulumi.Input[float] = 300.0, soapi: Optional[pulumi.Input[Mapping[str, Any]]] = None,
                 hand_over: bool = False, nodes: Optional[Mapping[str, str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        props = {
            "ip": ip, "service": service, "failBack": fail_back, "backend": backend, "endpoint": endpoint,
            "credentials": pulumi.Output.secret(credentials) if credentials is not None else None,
            "timeout": timeout, "soapi": soapi, "ipName": None, "handOver": hand_over, "nodes": nodes,
            "activeNode": None,
            # an input only with failBack (the routing `up` restores); otherwise only an output
            "routedTo": pulumi.Output.all(fail_back, service).apply(lambda v: v[1] if v[0] is True else None),
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["credentials"]))
        super().__init__(_provider_class()(_ROOT), name, props, opts)
        self.routed_to = self.routedTo
