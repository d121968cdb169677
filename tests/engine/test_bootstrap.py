"""The engine in .engine/bin is the pinned one, and a warm bootstrap rebuilds nothing."""
import subprocess

from tests.support.engine import BIN, REPO, pinned_engine_version, pinned_requirement


def test_pins_agree():
    assert pinned_requirement("pulumi") == pinned_engine_version()
    bootstrap = (REPO / "engine" / "bootstrap").read_text()
    assert f'COMMAND_PROVIDER_VERSION = "{pinned_requirement("pulumi-command")}"' in bootstrap


def test_pulumi_version_is_the_pinned_one():
    out = subprocess.run([str(REPO / "engine" / "run"), "pulumi", "version"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "v" + pinned_engine_version()


def test_warm_bootstrap_rebuilds_nothing():
    binaries = ["pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python"]
    before = {name: (BIN / name).stat().st_mtime_ns for name in binaries}
    out = subprocess.run([str(REPO / "engine" / "bootstrap")], capture_output=True, text=True, check=True).stdout
    assert "up to date" in out
    assert "building" not in out
    assert {name: (BIN / name).stat().st_mtime_ns for name in binaries} == before

