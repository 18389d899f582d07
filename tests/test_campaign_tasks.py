"""Campaign task references by module (issue 16 item 2) and `tierlock init DIR`.

A task is a `.py` file relative to the campaign, a dotted module found on the Python path
(`tierlock.tasks.text_only.safety@text_only_safety`), or an Inspect registry name. A module is
given to Inspect as its file, so pinning hashes it like a file. `tierlock init` writes a copy of
the default campaign whose policies are the copied ones and whose tasks are the installed modules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tierlock.tasks
from tierlock.runner import CampaignError, load_campaign
from tierlock.runner._campaign import DEFAULT_CAMPAIGN
from tierlock.runner._pinning import pin_changes, pins
from tierlock.tasks._policy import POLICY_DIR

TASKS = Path(tierlock.tasks.__file__).resolve().parent
TEXT_POLICY = POLICY_DIR / "text-only.yaml"


def campaign(tmp_path: Path, *tasks: str) -> Path:
    lines = [f"      - {{task: {t!r}, kind: qualification}}" for t in tasks]
    p = tmp_path / "c.yaml"
    p.write_text(
        f"name: demo\ntiers:\n  - tier: text-only\n    policy: {TEXT_POLICY}\n    tasks:\n"
        + "\n".join(lines)
        + "\n"
    )
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(CampaignError) as e:
        load_campaign(path)
    return e.value.lines()


def test_a_module_reference_is_given_to_inspect_as_its_file(tmp_path: Path) -> None:
    c = load_campaign(
        campaign(
            tmp_path,
            "tierlock.tasks.text_only.safety@text_only_safety",
            "tierlock.tasks.text_only.qualification",
            "some_registry_task",
        )
    )
    by_module, whole_module, registry = c.tiers[0].tasks
    safety = TASKS / "text_only" / "safety.py"
    assert c.task_file(by_module) == safety
    assert c.task_ref(by_module) == f"{safety}@text_only_safety"
    assert c.task_ref(whole_module) == str(TASKS / "text_only" / "qualification.py")
    assert by_module.name == "text_only_safety"
    assert c.task_file(registry) is None  # no dot: an Inspect registry name, left to Inspect
    assert c.task_ref(registry) == "some_registry_task"


def test_a_module_reference_on_the_users_path_is_pinned_by_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "lib" / "my_evals"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "probe.py").write_text("# a task file\n")
    (pkg / "data" / "items.json").write_text("[1]\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    c = load_campaign(campaign(tmp_path, "my_evals.probe@probe"))
    assert c.task_ref(c.tiers[0].tasks[0]) == f"{(pkg / 'probe.py').resolve()}@probe"
    recorded = {"pins": pins(c)}
    pin = recorded["pins"]["tiers"]["text-only"]["tasks"]["probe"]
    assert pin["sha256"] is not None and pin["data"] is not None
    assert pin_changes(recorded, c) == []
    (pkg / "probe.py").write_text("# a task file, changed\n")
    assert any("task file" in m and "probe.py" in m for m in pin_changes(recorded, c))
    (pkg / "data" / "items.json").write_text("[2]\n")
    assert any("task data" in m for m in pin_changes(recorded, c))


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("no_such_pkg.tasks@t", "task module no_such_pkg.tasks not found"),
        ("tierlock.tasks.no_such_module@t", "task module tierlock.tasks.no_such_module not found"),
        (
            "broken_pkg.mod@t",
            "task module broken_pkg.mod cannot be found: importing its package "
            "failed (ZeroDivisionError: division by zero)",
        ),
    ],
)
def test_a_module_that_cannot_be_found_is_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str, expected: str
) -> None:
    (tmp_path / "broken_pkg").mkdir()
    (tmp_path / "broken_pkg" / "__init__.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = problems(campaign(tmp_path, ref))
    assert len(lines) == 1
    assert "c.yaml:6:" in lines[0]
    assert "tiers[0].tasks[0].task" in lines[0] and expected in lines[0]


def test_a_missing_task_file_is_still_named(tmp_path: Path) -> None:
    (line,) = problems(campaign(tmp_path, "nope.py@t"))
    assert "tiers[0].tasks[0].task" in line and "nope.py does not exist" in line


def tierlock(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("tierlock")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_init_writes_a_campaign_of_copied_policies_and_installed_tasks(tmp_path: Path) -> None:
    out = tmp_path / "my-evals"
    r = tierlock("init", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    shipped = sorted(
        f"policies/{p.relative_to(POLICY_DIR).as_posix()}" for p in POLICY_DIR.rglob("*.yaml")
    )
    assert written == sorted(["campaign.yaml", *shipped])
    assert "policies/examples/data-analysis.yaml" in written
    for rel in shipped:
        assert (out / rel).read_bytes() == (POLICY_DIR / rel.removeprefix("policies/")).read_bytes()
    assert r.stdout.splitlines()[-1] == (
        f"next: tierlock policy check {out / 'policies'} && tierlock run {out / 'campaign.yaml'}"
    )

    copy, default = load_campaign(out / "campaign.yaml"), load_campaign(DEFAULT_CAMPAIGN)
    assert copy.name == "my-evals"  # its runs do not resume the shipped campaign's
    assert [t.tier for t in copy.tiers] == [t.tier for t in default.tiers]
    for mine, theirs in zip(copy.tiers, default.tiers, strict=True):
        assert copy.policy_path(mine) == (out / "policies" / f"{mine.tier}.yaml").resolve()
        for a, b in zip(mine.tasks, theirs.tasks, strict=True):
            assert a.task.startswith("tierlock.tasks.")  # by module: works outside the tree
            assert copy.task_ref(a) == default.task_ref(b)
            assert (a.kind, a.thresholds) == (b.kind, b.thresholds)
    text = (out / "campaign.yaml").read_text()
    assert text.startswith("# Written by `tierlock init`")
    assert "# (halt); a missed qualification threshold" in text  # the default's comments kept


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "evals"
    (out / "policies").mkdir(parents=True)
    (out / "policies" / "text-only.yaml").write_text("name: mine\ntier: text-only\n")
    r = tierlock("init", str(out), cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "already exists" in r.stderr and "--force" in r.stderr
    assert not (out / "campaign.yaml").exists()  # nothing written
    assert (out / "policies" / "text-only.yaml").read_text() == "name: mine\ntier: text-only\n"
    r = tierlock("init", str(out), "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "policies" / "text-only.yaml").read_bytes() == TEXT_POLICY.read_bytes()
    assert (out / "campaign.yaml").is_file()


def test_init_into_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    r = tierlock("init", "f", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "f" in r.stderr
