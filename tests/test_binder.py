"""The Binder configuration (binder/) stays consistent with pyproject.toml.

repo2docker ignores pyproject.toml when binder/ exists, so the dependency list is repeated there; these tests
catch the two drifting apart (a dependency added to one only, a pin outside the declared range) and the
classic postBuild mistakes (no ``set -e``, not executable, package not installed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
# Binder-only additions on top of pyproject's [project] dependencies.
BINDER_EXTRAS = {"voila"}
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _project_requirements() -> dict[str, Requirement]:
    reqs = [Requirement(s) for s in _pyproject()["project"]["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _binder_lines() -> list[str]:
    lines = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _binder_requirements() -> dict[str, Requirement]:
    out = {}
    for line in _binder_lines():
        if line.startswith("-"):  # pip options such as --extra-index-url
            continue
        r = Requirement(line)
        name = canonicalize_name(r.name)
        assert name not in out, f"binder/requirements.txt lists {r.name} twice"
        out[name] = r
    return out


def _pinned_version(req: Requirement) -> Version:
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
        f"binder/requirements.txt: pin {req.name} exactly (name==version) so Binder builds are reproducible, "
        f"got {req}"
    )
    return Version(specs[0].version)


def test_binder_files_exist():
    for name in ("runtime.txt", "requirements.txt", "postBuild", "jupyterlab-overrides.json"):
        assert (BINDER / name).is_file(), f"binder/{name} is missing"


def test_runtime_python_satisfies_requires_python():
    text = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+\.\d+)", text)
    assert m, f"binder/runtime.txt must read 'python-X.Y', got {text!r}"
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert Version(m.group(1)) in requires, f"runtime {m.group(1)} violates requires-python {requires}"


def test_same_dependency_set_as_pyproject():
    project = set(_project_requirements())
    binder = set(_binder_requirements())
    missing = sorted(project - binder)
    extra = sorted(binder - project - BINDER_EXTRAS)
    assert not missing, (
        f"in pyproject.toml [project] dependencies but not in binder/requirements.txt: {missing}"
    )
    assert not extra, (
        f"in binder/requirements.txt but not in pyproject.toml (nor Binder-only extras): {extra}"
    )
    assert BINDER_EXTRAS <= binder, f"binder/requirements.txt lacks {sorted(BINDER_EXTRAS - binder)}"


def test_binder_pins_satisfy_pyproject_ranges():
    project = _project_requirements()
    bad = []
    for name, req in _binder_requirements().items():
        version = _pinned_version(req)
        if name not in project:
            continue
        want = project[name]
        if not want.specifier.contains(version, prereleases=True):
            bad.append(f"{req} is outside pyproject's {want}")
        if not set(want.extras) <= set(req.extras):
            bad.append(f"{req} lacks extras {sorted(set(want.extras) - set(req.extras))} of {want}")
    assert not bad, "binder pins not satisfiable under pyproject.toml:\n" + "\n".join(bad)


def test_torch_is_cpu_only():
    torch = _binder_requirements()["torch"]
    version = _pinned_version(torch)
    assert version.local == "cpu", f"pin a CPU-only torch wheel (torch==X.Y.Z+cpu), got {torch}"
    opts = [shlex.split(line) for line in _binder_lines() if line.startswith("-")]
    assert ["--extra-index-url", CPU_INDEX] in opts or [f"--extra-index-url={CPU_INDEX}"] in opts, (
        f"binder/requirements.txt needs '--extra-index-url {CPU_INDEX}' for the +cpu torch wheel"
    )


def _commands(script: str) -> list[str]:
    return [s for s in (line.strip() for line in script.splitlines()) if s and not s.startswith("#")]


def test_postbuild_fails_fast_and_installs_the_package():
    path = BINDER / "postBuild"
    script = path.read_text()
    assert script.startswith("#!"), "binder/postBuild needs a shebang line (#!/bin/bash)"
    assert os.access(path, os.X_OK), "binder/postBuild must be executable (chmod +x)"
    cmds = _commands(script)
    assert cmds, "binder/postBuild is empty"
    first = shlex.split(cmds[0])
    # `set -e` must come before any real command, or a failing step leaves a half-built image.
    assert first[0] == "set" and any(a.startswith("-") and "e" in a for a in first[1:]), (
        f"binder/postBuild must start with `set -e` (or -euo pipefail), first command is {cmds[0]!r}"
    )
    installs = [c for c in cmds if re.search(r"\bpip install\b", c)]
    assert any("--no-deps" in c and re.search(r"-e \.(\s|$)", c) for c in installs), (
        "binder/postBuild must install the package itself: pip install --no-deps -e . "
        "(repo2docker ignores pyproject.toml when binder/ exists)"
    )
    assert "umap" in script.lower(), "binder/postBuild should warm numba by running UMAP once"
    assert "jupyterlab-overrides.json" in script, "binder/postBuild should install the JupyterLab overrides"


def test_jupyterlab_overrides_match_installed_schemas():
    """Each overridden setting exists in JupyterLab's schema with a valid value (typos fail silently)."""
    jsonschema = pytest.importorskip("jsonschema")
    from jupyterlab.commands import get_app_dir

    overrides = json.loads((BINDER / "jupyterlab-overrides.json").read_text())
    schemas = Path(get_app_dir()) / "schemas"
    problems = []
    for plugin, values in overrides.items():
        package, _, name = plugin.partition(":")
        schema_file = schemas / package / f"{name}.json"
        if not schema_file.is_file():
            problems.append(f"{plugin}: no schema {schema_file}")
            continue
        props = json.loads(schema_file.read_text()).get("properties", {})
        for key, value in values.items():
            if key not in props:
                problems.append(f"{plugin}: unknown setting {key!r}")
                continue
            try:
                jsonschema.validate(value, {k: v for k, v in props[key].items() if k != "default"})
            except jsonschema.ValidationError as exc:
                problems.append(f"{plugin}.{key}={value!r}: {exc.message}")
    assert not problems, "binder/jupyterlab-overrides.json:\n" + "\n".join(problems)
