"""The real engine drives a Python program end to end: component, dynamic provider with read, secrets."""
import secrets
from pathlib import Path

import pytest

from tests.support.engine import REPO, Stack, has_plugin, pinned_requirement

PROGRAM = Path(__file__).parent / "program"


@pytest.fixture
def stack(tmp_path):
    s = Stack(PROGRAM, tmp_path)
    s.init()
    s.files = tmp_path / "files"
    s.files.mkdir()
    s.token = "tok-" + secrets.token_hex(16)
    s.set_config("dir", str(s.files))
    s.set_config("token", s.token, secret=True)
    return s


def assert_no_plaintext(stack):
    for text in stack.transcript:
        assert stack.token not in text
    assert stack.token not in stack.export()
    for path in stack.backend.rglob("*"):
        if path.is_file():
            assert stack.token.encode() not in path.read_bytes(), path


def test_preview_up_refresh_destroy(stack):
    preview = stack.pulumi("preview", "--diff")
    assert "ovh-ha:test:Pair" in preview.stdout
    assert "+ 4 to create" in preview.stdout  # stack, component, two dynamic resources
    assert not (stack.files / "plain.txt").exists(), "preview must not touch anything"

    stack.pulumi("up", "--yes")
    assert (stack.files / "plain.txt").read_text() == "declared content\n"
    assert (stack.files / "secret.txt").read_text() == f"token={stack.token}\n"
    outputs = stack.outputs()
    assert outputs["token"] == "[secret]"
    assert len(outputs["plainSha"]) == 64

    stack.pulumi("preview", "--expect-no-changes")

    # Drift made by hand is seen by refresh through the provider's read, and repaired by up.
    (stack.files / "plain.txt").write_text("edited by hand\n")
    refresh = stack.pulumi("refresh", "--yes", "--diff")
    assert "pair-plain" in refresh.stdout and "~ 1 updated" in refresh.stdout
    assert "pair-secret" not in refresh.stdout
    assert stack.resource_outputs("pair-plain")["sha256"] != outputs["plainSha"]
    stack.pulumi("up", "--yes")
    assert (stack.files / "plain.txt").read_text() == "declared content\n"
    stack.pulumi("preview", "--expect-no-changes")

    stack.pulumi("destroy", "--yes")
    assert not (stack.files / "plain.txt").exists()
    assert not (stack.files / "secret.txt").exists()
    assert stack.outputs() == {}
    assert_no_plaintext(stack)


def test_secret_config_is_encrypted_in_the_stack_file(stack):
    text = (stack.dir / f"Pulumi.{stack.name}.yaml").read_text()
    assert stack.token not in text
    assert "secure:" in text


@pytest.mark.skipif(not has_plugin("pulumi-resource-command"),
                    reason="pulumi-resource-command is not installed: the Go module proxy here does not serve "
                           "github.com/pulumi/pulumi-command/provider, so engine/bootstrap cannot build it")
def test_pulumi_command_resource(stack):
    stack.set_config("useCommand", "true")
    stack.pulumi("up", "--yes")
    assert stack.outputs()["commandStdout"] == "made-by-command"
    stack.pulumi("refresh", "--yes")
    stack.pulumi("destroy", "--yes")
    assert_no_plaintext(stack)
    assert pinned_requirement("pulumi-command")


@pytest.mark.skipif(has_plugin("pulumi-resource-command"), reason="the command provider is installed here")
def test_missing_plugin_is_an_error_not_a_download(stack):
    stack.set_config("useCommand", "true")
    proc = stack.pulumi("preview", check=False, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "command" in text and "plugin" in text.lower()
    assert "downloading" not in text.lower()
