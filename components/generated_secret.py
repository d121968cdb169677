"""Secrets the operator did not give: generated once, kept encrypted in the state, rotated on demand."""
import secrets
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class _GeneratedSecretProvider(ResourceProvider):
    """Random bytes as hex. A new value only when the length or the epoch changes (rotation)."""

    def create(self, props):
        value = secrets.token_hex(int(props["length"]))
        return CreateResult(id_=secrets.token_hex(8), outs={**props, "value": value})

    def diff(self, _id, olds, news):
        changed = [k for k in ("length", "epoch") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class GeneratedSecret(Resource, module="secret", name="GeneratedSecret"):
    """`value` is `length` random bytes in hex; bump `epoch` to replace it with a fresh one."""

    value: pulumi.Output[str]

    def __init__(self, name: str, length: int, epoch: int = 1, opts: Optional[pulumi.ResourceOptions] = None):
        # The alias keeps secrets made before the resource had its own type name: no new value on upgrade.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["value"], aliases=[pulumi.Alias(type_="pulumi-python:dynamic:Resource")]))
        super().__init__(_GeneratedSecretProvider(), name,
                         {"length": length, "epoch": epoch, "value": None}, opts)
