"""The wheel is complete (issue 16 item 2): built from this tree, installed plainly (not editable)
into a fresh venv, `tierlock` works from a directory that is not the checkout.

- `test_every_package_folder_is_listed`: pyproject's `packages` is exactly the package folders of
  the tree (a forgotten one would ship without its modules). Fast.
- `wheel` (fixture): `pip wheel --no-deps` on a copy of the tree's packaging inputs (pyproject,
  README and the four package folders) in a temporary directory, so the shared checkout gets no
  `build/` or `*.egg-info` and concurrent runs do not collide. The build backend is installed by
  pip in an isolated environment, as for a user (PyPI or pip's cache).
- `venv` (fixture): `python -m venv --without-pip`, then one `.pth` file in the venv listing this
  interpreter's site-packages directories, then `pip install --no-deps --no-index
  --ignore-installed` of the wheel (pip itself comes from the listed site-packages).
  **Why not `--system-site-packages`:** the editable install of tierlock lives in those
  site-packages as an import hook (`__editable__.tierlock-*.pth` runs
  `__editable___tierlock_*_finder.install()`, a meta-path finder mapping `tierlock.*` to the
  checkout). A venv with system site-packages would process that `.pth` and could import
  `tierlock.policies` (or any module the wheel lacks) from the checkout, hiding exactly what this
  test looks for. Plain directory lines in a `.pth` file are appended to `sys.path` but the `.pth`
  files inside them are not processed, so the dependencies (inspect-ai, docker, ...) are importable
  and the editable finder never installs. `--ignore-installed` keeps pip from trying to uninstall
  the editable distribution it sees there. `test_the_venv_imports_the_wheels_copy` checks all of
  this: every `tierlock` module and the `inspect_ai` entry point come from the venv.
- From a temporary directory: `tierlock policy check` on the installed policies, `tierlock init`
  then `tierlock policy check` on the copies, `tierlock run` of a text-only campaign (the copy's
  first tier) with the offline default model, and (Docker, the tierlock images found by tag) the
  built-in default ladder.

Cost: building and installing take ~10 s, the text-only run ~20 s, the default ladder ~1-2 min
(images already built; a first build adds minutes). Marked `slow`; the ladder also `docker`.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]
DIST_INFO = f"tierlock-{PYPROJECT['project']['version']}.dist-info/"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


def package_folders() -> dict[str, Path]:
    """`tierlock.x.y` → folder, for every folder with an `__init__.py` below the mapped roots,
    and the roots themselves (`policies/` is a data-only package without one)."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIR.items():
        root = REPO / folder
        found[package] = root
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            if "__pycache__" not in rel.parts:
                found[".".join((package, *rel.parts))] = init.parent
    return found


def test_every_package_folder_is_listed() -> None:
    assert set(PACKAGE_DIR) == {
        "tierlock.sandbox",
        "tierlock.runner",
        "tierlock.tasks",
        "tierlock.policies",
    }
    listed = set(SETUPTOOLS["packages"])
    folders = package_folders()
    assert sorted(set(folders) - listed) == [], "package folders missing from pyproject packages"
    assert sorted(listed - set(folders)) == [], "pyproject packages with no folder"
    for package, folder in PACKAGE_DIR.items():  # modules outside a package would not ship
        for py in (REPO / folder).rglob("*.py"):
            if "data" in py.relative_to(REPO / folder).parts:
                continue  # task data (e.g. a sidecar's script), shipped as package data
            assert (py.parent / "__init__.py").is_file(), f"{py} is in no package ({package})"


def shipped_sources() -> set[str]:
    """Wheel paths of every file of the four folders git knows (the tree when git cannot say)."""
    out: set[str] = set()
    for package, folder in PACKAGE_DIR.items():
        prefix = package.replace(".", "/")
        try:
            listed = subprocess.run(
                ["git", "ls-files", "--", folder],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout.splitlines()
            files = [REPO / f for f in listed]
        except (OSError, subprocess.CalledProcessError):
            files = [p for p in (REPO / folder).rglob("*") if p.is_file()]
        for f in files:
            rel = f.relative_to(REPO / folder)
            if f.is_file() and "__pycache__" not in rel.parts:
                out.add(f"{prefix}/{rel.as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in PACKAGE_DIR.values():
        shutil.copytree(REPO / folder, src / folder, ignore=SKIP)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, f"pip wheel failed:\n{r.stdout}\n{r.stderr}"
    (built,) = (work / "dist").glob("tierlock-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_tierlock_only_and_everything_it_needs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    outside = sorted(n for n in names if not n.startswith(("tierlock/", DIST_INFO)))
    assert outside == [], "the wheel installs names other than tierlock"
    for needed in (
        "tierlock/policies/text-only.yaml",
        "tierlock/policies/tool-restricted.yaml",
        "tierlock/policies/networked.yaml",
        "tierlock/policies/examples/data-analysis.yaml",
        "tierlock/runner/campaigns/default.yaml",
        "tierlock/runner/series/example.yaml",
        "tierlock/runner/series/quick.campaign.yaml",
        "tierlock/sandbox/seccomp/tierlock-default.json",
        "tierlock/tasks/tool_restricted/data/thorough/rotated/app.log.2",
        "tierlock/runner/_cli_init.py",
    ):
        assert needed in names
    missing = sorted(shipped_sources() - names)
    assert missing == [], "files of the package folders missing from the wheel"
    entry_points = zipfile.ZipFile(wheel).read(DIST_INFO + "entry_points.txt").decode()
    for name, target in PYPROJECT["project"]["scripts"].items():
        assert f"{name} = {target}" in entry_points
    for name, target in PYPROJECT["project"]["entry-points"]["inspect_ai"].items():
        assert f"{name} = {target}" in entry_points
    top_level = zipfile.ZipFile(wheel).read(DIST_INFO + "top_level.txt").decode().split()
    assert top_level == ["tierlock"]


class Venv:
    def __init__(self, root: Path, purelib: Path) -> None:
        self.root, self.purelib = root, purelib
        self.bin = root / "bin"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        }
        self.env["PATH"] = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env["VIRTUAL_ENV"] = str(root)
        self.env.pop("TIERLOCK_RUNS", None)

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        exe = args[0] if os.sep in args[0] else str(self.bin / args[0])
        return subprocess.run(
            [exe, *args[1:]],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        ours.append(site.getusersitepackages())
    (purelib / "_tierlock_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    v = Venv(root, purelib)
    r = v.run(
        "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        str(wheel),
        cwd=root,
    )
    assert r.returncode == 0, f"pip install failed:\n{r.stdout}\n{r.stderr}"
    return v


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    assert REPO not in d.resolve().parents
    return d


PROBE = """
import importlib, importlib.metadata, json, sys
import tierlock.runner, tierlock.sandbox, tierlock.tasks, tierlock.policies
from tierlock.runner._campaign_file import load_campaign
c = load_campaign()
(ep,) = [e for e in importlib.metadata.entry_points(group="inspect_ai") if e.name == "tierlock"]
print(json.dumps({
    "modules": [m.__file__ for m in (tierlock.runner, tierlock.sandbox, tierlock.tasks)],
    "policies": list(tierlock.policies.__path__),
    "tierlock": list(sys.modules["tierlock"].__path__),
    "finders": [repr(f) for f in sys.meta_path],
    "entry_point": ep.load().__file__,
    "campaign": c.source,
    "campaign_policies": [str(c.policy_path(t)) for t in c.tiers],
    "campaign_tasks": [c.task_ref(s) for t in c.tiers for s in t.tasks],
}))
"""


@pytest.mark.slow
def test_the_venv_imports_the_wheels_copy(venv: Venv, elsewhere: Path) -> None:
    r = venv.run("python", "-c", PROBE, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    inside = str(venv.purelib / "tierlock") + os.sep
    assert [m.startswith(inside) for m in seen["modules"]] == [True] * 3, seen["modules"]
    assert seen["policies"] == [inside + "policies"]
    assert seen["tierlock"] == [inside.rstrip(os.sep)]  # no checkout portion of the namespace
    assert not any("Editable" in f for f in seen["finders"])
    assert seen["entry_point"].startswith(inside)
    # the shipped campaign's relative paths resolve inside the installed package
    assert seen["campaign"] == inside + "runner/campaigns/default.yaml"
    assert seen["campaign_policies"] == [
        inside + f"policies/{t}.yaml" for t in ("text-only", "tool-restricted", "networked")
    ]
    assert all(t.startswith(inside + "tasks/") for t in seen["campaign_tasks"])


@pytest.mark.slow
def test_policy_check_and_init_from_anywhere(venv: Venv, elsewhere: Path) -> None:
    n = len(list((REPO / PACKAGE_DIR["tierlock.policies"]).rglob("*.yaml")))
    r = venv.run(
        "tierlock", "policy", "check", str(venv.purelib / "tierlock" / "policies"), cwd=elsewhere
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith(f"ok: {n} files checked, 0 error(s)")

    r = venv.run("tierlock", "init", "my-evals", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == (
        "next: tierlock policy check my-evals/policies && tierlock run my-evals/campaign.yaml"
    )
    r = venv.run("tierlock", "policy", "check", "my-evals/policies", cwd=elsewhere)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith(f"ok: {n} files checked, 0 error(s)")
    r = venv.run("tierlock", "init", "my-evals", cwd=elsewhere)
    assert (r.returncode, r.stderr.count("\n")) == (1, 1), r.stderr


@pytest.mark.slow
def test_a_text_only_campaign_runs_from_anywhere(venv: Venv, elsewhere: Path) -> None:
    """The init copy's first tier (installed tasks by module, copied policy), offline model."""
    assert venv.run("tierlock", "init", "my-evals", cwd=elsewhere).returncode == 0
    data = yaml.safe_load((elsewhere / "my-evals" / "campaign.yaml").read_text())
    data["name"], data["tiers"] = "text-only-check", data["tiers"][:1]
    assert data["tiers"][0]["tier"] == "text-only"
    (elsewhere / "my-evals" / "text-only.yaml").write_text(yaml.safe_dump(data))
    r = venv.run(
        "tierlock",
        "run",
        "my-evals/text-only.yaml",
        "--runs-dir",
        "runs",
        cwd=elsewhere,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reached the top tier (text-only) clean" in r.stdout
    assert sorted((elsewhere / "runs").rglob("*.eval")), "no logs written"
    r = venv.run("tierlock", "verify", "--runs-dir", "runs", cwd=elsewhere)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.docker
def test_the_default_ladder_runs_from_anywhere(venv: Venv, elsewhere: Path, docker_client) -> None:
    """The built-in campaign of the installed package, all three tiers (README's first command,
    minus the editable install)."""
    r = venv.run("tierlock", "run", "--runs-dir", "runs", cwd=elsewhere, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reached the top tier (networked) clean" in r.stdout
