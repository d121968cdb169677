"""Drive the real Pulumi engine (engine/run) on throwaway stacks in a directory of their own."""
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "engine" / "run"
BIN = REPO / ".engine" / "bin"


def pinned_engine_version():
    return re.search(r"github\.com/pulumi/pulumi/pkg/v3 v(\S+)", (REPO / "engine" / "go.mod").read_text()).group(1)


def pinned_requirement(name):
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("==")[1].strip()
    raise LookupError(name)


def has_plugin(name):
    return (BIN / name).exists() or shutil.which(name) is not None


LAB_PASSPHRASE = (REPO / "lab" / "passphrase").read_text().strip()


def program_copy(dest: Path) -> Path:
    """The project's own program (what `pulumi` runs from the repository), copied to dest."""
    dest.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, dest / name)
    for folder in ("components", "node"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def lab_stack(tmp: Path, ssh_key_file: str, name: str = "lab", tweak=None, source: str = "lab") -> "Stack":
    """A stack named like the lab's with Pulumi.<source>.yaml's config (its secrets decrypt with the lab
    passphrase), in its own backend under tmp; each SSH handshake is traced to tmp/ssh-trace.log."""
    import yaml

    stack = Stack(program_copy(tmp / "src"), tmp, name=name, passphrase=LAB_PASSPHRASE)
    config = yaml.safe_load((REPO / f"Pulumi.{source}.yaml").read_text())
    config["config"]["ovh-ha-cluster:sshKeyFile"] = ssh_key_file
    if tweak:
        tweak(config["config"])
    (stack.dir / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(config))
    stack.pulumi("stack", "init", name)
    stack.env["OVH_HA_SSH_TRACE"] = str(tmp / "ssh-trace.log")
    return stack


class Stack:
    """One stack of one program copy, with its own file backend and passphrase."""

    def __init__(self, program_dir: Path, work: Path, name: str = "test", passphrase: str = "test-only"):
        self.dir = work / "program"
        shutil.copytree(program_dir, self.dir, ignore=shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__"))
        project = (self.dir / "Pulumi.yaml").read_text()
        project = re.sub(r"virtualenv: .*", f"virtualenv: {REPO / '.venv'}", project)
        (self.dir / "Pulumi.yaml").write_text(project)
        self.backend = work / "state"
        self.backend.mkdir()
        self.name = name
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase,
        }
        self.env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        self.transcript = []

    def pulumi(self, *args, check=True, stdin=None, timeout=600):
        cmd = [str(RUN), "pulumi", *args, "--non-interactive", "--color=never"]
        if args and args[0] not in ("stack", "config", "version"):
            cmd.extend(["--stack", self.name])
        proc = subprocess.run(cmd, cwd=self.dir, env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=timeout)
        self.transcript.append(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def init(self):
        self.pulumi("stack", "init", self.name)

    def set_config(self, key, value, secret=False):
        flag = ["--secret"] if secret else ["--plaintext"]
        # The value goes through stdin so that it never shows in the process list.
        self.pulumi("config", "set", key, *flag, "--stack", self.name, stdin=value)

    def outputs(self, show_secrets=False):
        import json
        args = ["stack", "output", "--json", "--stack", self.name] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.pulumi(*args).stdout)

    def resource_outputs(self, name):
        """Outputs of one resource as recorded in the state (what refresh wrote there)."""
        import json
        state = json.loads(self.export())
        found = [r for r in state["deployment"].get("resources", []) if r["urn"].endswith("::" + name)]
        assert len(found) == 1, f"{name}: {len(found)} resources in state"
        return found[0].get("outputs", {})

    def export(self):
        return self.pulumi("stack", "export", "--stack", self.name).stdout
