"""deploy/constraints.txt cannot rot: every dependency in pyproject.toml is pinned there, within
its bounds (`make constraints` writes it again from the test venv)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPOSITORY = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPOSITORY / "deploy" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = Version(version)
    return pins


@functools.cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("constraints", REPOSITORY / "scripts" / "constraints.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _dependencies() -> list[Requirement]:
    """pyproject.toml's requirements, read as scripts/constraints.py reads them."""
    return _script().project_requirements(REPOSITORY / "pyproject.toml")


def test_a_dependency_missing_from_the_venv_is_named_not_left_out(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pyee>=12", "no-such-package-of-ours>=1"]\n')
    pins, missing = _script().pinned_dependencies(pyproject)
    assert missing == ["no-such-package-of-ours"]
    assert "pyee" in pins and "typing-extensions" in pins  # pyee's own dependency, pinned too


def test_the_project_itself_is_not_pinned() -> None:
    assert "intercom" not in _pins()


@pytest.mark.parametrize("requirement", _dependencies(), ids=str)
def test_every_dependency_is_pinned_within_its_bounds(requirement: Requirement) -> None:
    pins = _pins()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement} is not in deploy/constraints.txt: run `make constraints`"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"deploy/constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}: run `make constraints`"
    )
