"""A component owning a dynamic-provider file (read back on refresh) and, when asked, a command."""
import hashlib
import os

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult


def _observe(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return "absent"


class LocalFileProvider(ResourceProvider):
    def create(self, props):
        self._write(props)
        return CreateResult(id_=props["path"], outs={**props, "sha256": _observe(props["path"])})

    def read(self, id_, props):
        return ReadResult(id_=id_, outs={**props, "sha256": _observe(id_)})

    def diff(self, id_, olds, news):
        want = hashlib.sha256(news["content"].encode()).hexdigest()
        changes = olds.get("sha256") != want or olds.get("content") != news["content"]
        return DiffResult(changes=changes, replaces=["path"] if olds.get("path") != news["path"] else [])

    def update(self, id_, olds, news):
        self._write(news)
        return UpdateResult(outs={**news, "sha256": _observe(news["path"])})

    def delete(self, id_, props):
        if os.path.exists(id_):
            os.remove(id_)

    @staticmethod
    def _write(props):
        fd = os.open(props["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(props["content"])


class LocalFile(Resource):
    sha256: pulumi.Output[str]

    def __init__(self, name, path, content, opts=None):
        super().__init__(LocalFileProvider(), name, {"path": path, "content": content, "sha256": None}, opts)


class Pair(pulumi.ComponentResource):
    def __init__(self, name, directory, token, opts=None):
        super().__init__("ovh-ha:test:Pair", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.plain = LocalFile(f"{name}-plain", os.path.join(directory, "plain.txt"), "declared content\n", child)
        self.secret = LocalFile(f"{name}-secret", os.path.join(directory, "secret.txt"),
                                token.apply(lambda t: f"token={t}\n"), child)
        self.register_outputs({"plainSha": self.plain.sha256})


config = pulumi.Config()
pair = Pair("pair", config.require("dir"), config.require_secret("token"))
pulumi.export("plainSha", pair.plain.sha256)
pulumi.export("token", config.require_secret("token"))

if config.get_bool("useCommand"):
    from pulumi_command import local

    echo = local.Command("echo", create="echo made-by-command", opts=pulumi.ResourceOptions(parent=pair))
    pulumi.export("commandStdout", echo.stdout)
