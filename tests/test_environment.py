"""environment.yml builds from channels that publish (no `pytorch::` pins) and installs what
pyproject.toml asks for, with the torch build the Makefile installs."""

import re

import tomllib
import yaml

from lab.provenance import REPO_ROOT


def _environment() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_uses_no_defunct_pytorch_channel():
    env = _environment()
    assert "pytorch" not in env["channels"]
    assert not [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("pytorch::")]


def test_environment_installs_every_pyproject_dependency_and_the_makefiles_torch():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip = next(d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = {_name(d.split("::")[-1]) for d in _environment()["dependencies"] if isinstance(d, str)}
    assert "-e .[dev]" in pip  # the package itself, so every dependency and the dev extras come with it
    extras = project["optional-dependencies"]
    assert "dev" in extras and "python" in conda
    torch_pin = re.search(r"TORCH_CPU := (\S+)", (REPO_ROOT / "Makefile").read_text()).group(1)
    assert torch_pin in pip
    named = {_name(p) for p in pip if not p.startswith("-")} | conda
    # dependencies installed from the environment file directly must not contradict pyproject's names
    assert named <= {_name(d) for d in project["dependencies"]} | {"python", "pip"}
