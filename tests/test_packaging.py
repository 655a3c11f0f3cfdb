"""environment.yml, pyproject.toml, constraints.txt and the Makefile must agree.

No conda here, so consistency is kept by this test rather than by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def requirements(pyproject):
    reqs = [Requirement(r) for r in pyproject["dependencies"]]
    for extra in pyproject["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return {canonicalize_name(r.name): r for r in reqs}


@pytest.fixture(scope="module")
def constraints():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"constraints.txt line is not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


@pytest.fixture(scope="module")
def environment():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _pip_section(environment):
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def _env_pins(environment):
    pins = {}
    for line in _pip_section(environment):
        if line.startswith("-"):
            continue
        req = Requirement(line)
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", line
        pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return pins


def test_package_requirements_are_lower_bounds_only(requirements):
    for name, req in requirements.items():
        operators = {spec.operator for spec in req.specifier}
        assert ">=" in operators, f"{name} needs a lower bound in pyproject.toml"
        assert "==" not in operators, f"{name} is pinned exactly in pyproject.toml; pin in constraints"


def test_torch_pair_is_pinned(constraints):
    assert constraints["torch"] == "2.14.1"
    assert constraints["torchvision"] == "0.29.1"


def test_environment_lists_every_requirement_with_the_constraints_pin(
        environment, requirements, constraints):
    pins = _env_pins(environment)
    assert set(pins) == set(requirements), (
        f"only in environment.yml: {sorted(set(pins) - set(requirements))}; "
        f"only in pyproject.toml: {sorted(set(requirements) - set(pins))}")
    for name, version in pins.items():
        assert constraints.get(name) == version, f"{name}: environment.yml {version}, " \
                                                 f"constraints.txt {constraints.get(name)}"
        assert Version(version) in requirements[name].specifier, \
            f"{name}=={version} violates pyproject's {requirements[name].specifier}"


def test_every_requirement_is_in_the_constraints(requirements, constraints):
    missing = sorted(set(requirements) - set(constraints))
    assert not missing, f"not pinned in constraints.txt: {missing}"


def test_environment_installs_the_package_with_all_extras_under_the_constraints(
        environment, pyproject):
    section = _pip_section(environment)
    assert "--constraint constraints.txt" in section
    editable = [line for line in section if line.startswith("-e ")]
    assert len(editable) == 1
    extras = set(re.search(r"\[(.*)\]", editable[0])[1].split(","))
    assert extras == set(pyproject["optional-dependencies"])


def test_environment_python_satisfies_requires_python(environment, pyproject):
    pythons = [d for d in environment["dependencies"] if isinstance(d, str)
               and d.startswith("python")]
    assert len(pythons) == 1
    version = pythons[0].split("=", 1)[1]
    assert Version(version) in SpecifierSet(pyproject["requires-python"])


def test_makefile_installs_with_the_constraints_and_all_extras(pyproject):
    makefile = (ROOT / "Makefile").read_text()
    extras = ",".join(pyproject["optional-dependencies"])
    assert f'-c constraints.txt -e ".[{extras}]"' in makefile
