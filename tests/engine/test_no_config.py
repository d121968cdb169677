"""A stack with no configuration at all still runs: the language host hands the SDK an empty object."""
import yaml

from tests.support.engine import REPO, Stack


def test_a_program_without_config_previews_and_updates(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    runtime = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["runtime"]
    (src / "Pulumi.yaml").write_text(yaml.safe_dump({"name": "no-config", "runtime": runtime}))
    (src / "__main__.py").write_text("import pulumi\n\npulumi.export('answer', 42)\n")
    stack = Stack(src, tmp_path)
    stack.init()
    stack.pulumi("preview")
    stack.pulumi("up", "--yes")
    assert stack.outputs() == {"answer": 42}
