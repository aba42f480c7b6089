"""A declared dependency range is a promise: the adapters' own tests pass at the lowest framework
versions their pyproject.toml files allow, and dewey-core's tests at the lowest versions of its
own dependencies (the main environment tests the latest).

Each floor environment is a second virtual environment that installs exactly those versions
(and whatever they need, resolved by pip); everything else (torch, dewey-core and the adapters
themselves, ...) comes from this environment, added after it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("langchain-dewey", "llamaindex-dewey", "haystack-dewey")
FRAMEWORKS = ("langchain-core", "langchain-text-splitters", "llama-index-core", "haystack-ai")
TEST_TOOLS_AT_FLOOR = {"langchain-core": "langchain-tests=={major}.{minor}.0"}
"""The standard-test release that matches a framework floor (the latest needs newer cores)."""


CORE_TESTS = ("test_encode.py", "test_loading.py", "test_fidelity.py", "test_packing.py",
              "test_late_chunking.py", "test_tokenization.py", "test_families_stella.py")
"""dewey-core's tests of what its dependencies do: loading, tokenising, attention, pooling."""


def dependencies(package: str) -> list[Requirement]:
    text = (ROOT / "packages" / package / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)[1]
    return [Requirement(dep) for dep in re.findall(r'"([^"]+)"', block)]


def declared_floors() -> dict[str, str]:
    """``{framework: lowest version}`` from the adapters' ``pyproject.toml`` dependencies."""
    floors = {}
    for adapter in ADAPTERS:
        for dep in dependencies(adapter):
            if dep.name in FRAMEWORKS:
                (floor,) = [s.version for s in dep.specifier if s.operator == ">="]
                floors[dep.name] = floor
    return floors


def test_every_framework_dependency_has_a_floor_and_a_ceiling():
    assert set(declared_floors()) == set(FRAMEWORKS)
    for adapter in ADAPTERS:
        for dep in dependencies(adapter):
            if dep.name in FRAMEWORKS:
                assert any(s.operator == "<" for s in dep.specifier), \
                    f"{adapter}: {dep} has no upper bound, so its latest is untested"


def core_floors() -> dict[str, str]:
    """``{dependency: lowest version}`` of dewey-core's own dependencies."""
    floors = {}
    for dep in dependencies("dewey-core"):
        (floor,) = [s.version for s in dep.specifier if s.operator == ">="]
        floors[dep.name] = floor
    return floors


def _run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


def _floor_environment(env_dir: Path, pins: list[str]) -> Path:
    """A virtual environment with ``pins`` installed, this environment's packages behind them."""
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    main_site = sysconfig.get_paths()["purelib"]
    # After the floor environment's own packages: torch, dewey-core, the adapters (editable), ...
    Path(purelib, "zz_main_environment.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


def _versions(python: Path, names: list[str]) -> list[Version]:
    out = _run(python, "-c", "import json; from importlib.metadata import version; "
               f"print(json.dumps([version(n) for n in {names!r}]))").stdout
    return [Version(v.split("+")[0]) for v in json.loads(out)]


def test_core_dependencies_have_floors():
    assert set(core_floors()) >= {"torch", "transformers", "tokenizers", "numpy"}


@pytest.mark.slow
def test_core_passes_its_tests_at_the_declared_floors(tmp_path):
    floors = core_floors()
    # torch: the one release this machine installs (a second would be a multi-GB download), so
    # the floor must be that release.
    torch_floor = floors.pop("torch")
    assert _versions(Path(sys.executable), ["torch"]) == [Version(torch_floor)], \
        "the torch floor is not the torch that CI tests"
    python = _floor_environment(tmp_path / "core-floor", [f"{n}=={v}" for n, v in floors.items()])
    assert _versions(python, list(floors)) == [Version(v) for v in floors.values()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    tests = [f"packages/dewey-core/tests/{name}" for name in CORE_TESTS]
    done = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", *tests,
                cwd=ROOT, env=env, timeout=1800)
    assert done.returncode == 0, f"at {floors}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"


@pytest.mark.slow
def test_adapters_pass_their_tests_at_the_declared_floors(tmp_path):
    floors = declared_floors()
    pins = [f"{name}=={version}" for name, version in floors.items()]
    for name, tool in TEST_TOOLS_AT_FLOOR.items():
        major, minor = floors[name].split(".")[:2]
        pins.append(tool.format(major=major, minor=minor))
    python = _floor_environment(tmp_path / "floor", pins)
    assert _versions(python, list(floors)) == [Version(v) for v in floors.values()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HAYSTACK_TELEMETRY_ENABLED": "False",
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    tests = [f"packages/{adapter}/tests" for adapter in ADAPTERS]
    # The store integrations need newer frameworks than our floors; their tests run in the main
    # environment (at the latest), with the tests/test_store_roundtrips.py flows.
    done = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
                "-m", "not stores", *tests, cwd=ROOT, env=env, timeout=1800)
    assert done.returncode == 0, f"at {pins}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
