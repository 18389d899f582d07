"""`tierlock init task NAME --tier T` (issue 20 item 3): a standalone task folder per tier that
passes `tierlock policy check`, uses only the public API, runs clean with `tierlock/diligent` as
written and does not end clean with `tierlock/reckless` (the audit or the safety gate catches it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tierlock.sandbox import TIERS
from tierlock.tasks._policy import POLICY_DIR

EXE = Path(sys.executable).with_name("tierlock")


def tierlock(*args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def init_task(tmp_path: Path, tier: str, name: str = "my-task") -> Path:
    r = tierlock("init", "task", name, "--tier", tier, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp_path / name


@pytest.mark.parametrize("tier", TIERS)
def test_the_folder_uses_only_the_public_api_and_passes_policy_check(
    tmp_path: Path, tier: str
) -> None:
    folder = init_task(tmp_path, tier)
    expected = {"task.py", "policy.yaml", "campaign.yaml", "check.sh", "README.md",
                "qualification.json", "safety.json"} | ({"service.py"} if tier == "networked"
                                                       else set())  # fmt: skip
    assert {p.name for p in folder.iterdir()} == expected
    tree = ast.parse((folder / "task.py").read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    ours = [m for m in modules if m.split(".")[0] == "tierlock"]
    assert "tierlock.tasks" in ours
    assert [m for m in ours if any(p.startswith("_") for p in m.split("."))] == []
    policy = (folder / "policy.yaml").read_text()
    assert f"extends: {(POLICY_DIR / f'{tier}.yaml').resolve()}" in policy
    for target in (str(folder), str(folder / "policy.yaml")):
        r = tierlock("policy", "check", target, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 file checked, 0 error(s)" in r.stdout


def test_it_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    folder = init_task(tmp_path, "tool-restricted")
    (folder / "task.py").write_text("# mine\n")
    r = tierlock("init", "task", "my-task", "--tier", "tool-restricted", cwd=tmp_path)
    assert (r.returncode, r.stderr.count("\n")) == (1, 1), r.stderr
    assert "my-task/" in r.stderr and "already exists" in r.stderr and "--force" in r.stderr
    assert (folder / "task.py").read_text() == "# mine\n"
    r = tierlock("init", "task", "my-task", "--tier", "tool-restricted", "--force", cwd=tmp_path)
    assert r.returncode == 0 and (folder / "task.py").read_text() != "# mine\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["init", "task", "x"], "Missing option '--tier'"),
        (["init", "task", "x", "--tier", "root"], "Invalid value for '--tier'"),
        (["init", "task", "1x", "--tier", "text-only"], "task name '1x'"),
    ],
)
def test_bad_arguments_are_one_message(tmp_path: Path, args: list[str], says: str) -> None:
    r = tierlock(*args, cwd=tmp_path)
    assert r.returncode in (1, 2) and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not list(tmp_path.iterdir())


def test_init_dir_still_works_beside_init_task(tmp_path: Path) -> None:
    r = tierlock("init", "--force", "copy", cwd=tmp_path)  # an option before DIR goes to DIR too
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "copy" / "campaign.yaml").is_file()
    r = tierlock("init", cwd=tmp_path)
    assert r.returncode == 2 and "Missing argument 'DIRECTORY'" in r.stderr
    assert "tierlock init -h" in r.stderr


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("tier", TIERS)
def test_the_template_runs_clean_with_diligent_and_not_with_reckless(
    tmp_path: Path, tier: str, docker_client
) -> None:
    folder = init_task(tmp_path, tier, name=f"t-{tier}")
    runs = tmp_path / "runs"
    campaign = str(folder / "campaign.yaml")
    r = tierlock("run", campaign, "--model", "tierlock/diligent", "--runs-dir", str(runs),
                 cwd=tmp_path, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"reached the top tier ({tier}) clean" in r.stdout
    r = tierlock("run", campaign, "--model", "tierlock/reckless", "--runs-dir", str(runs),
                 cwd=tmp_path, timeout=900)  # fmt: skip
    assert r.returncode != 0, r.stdout + r.stderr
    assert f"halted at tier {tier}: unsafe" in r.stdout, r.stdout
    if tier != "text-only":  # the audit itself (not only the safety score) saw the shortcut
        finding = "forbidden_host" if tier == "networked" else "forbidden_path"
        assert finding in r.stdout, r.stdout
