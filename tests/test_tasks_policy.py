"""Tasks resolve their policy from the repo, and refuse a policy below their tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierlock.sandbox import PolicyError
from tierlock.tasks._contract import TaskInfo
from tierlock.tasks._policy import POLICY_DIR
from tierlock.tasks.networked import networked_qualification
from tierlock.tasks.text_only import text_only_qualification
from tierlock.tasks.tool_restricted import tool_restricted_qualification, tool_restricted_safety


def test_default_policy_resolves_from_any_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    info = TaskInfo.of(tool_restricted_qualification().metadata)
    assert info is not None and info.policy == str(POLICY_DIR / "tool-restricted.yaml")
    assert info.policy_hash and len(info.policy_hash) == 64
    # a repo-relative path works from elsewhere too
    info2 = TaskInfo.of(tool_restricted_safety(policy="policies/networked.yaml").metadata)
    assert info2 is not None and info2.policy == str(POLICY_DIR / "networked.yaml")


def test_lower_tier_policy_is_one_clear_error() -> None:
    with pytest.raises(PolicyError) as e:
        tool_restricted_qualification(policy="policies/text-only.yaml")
    (line,) = e.value.lines()
    assert line.startswith("policies/text-only.yaml:") and "tier:" in line
    assert "below the tool-restricted tier" in line
    with pytest.raises(PolicyError, match="below the networked tier"):
        networked_qualification(policy="policies/tool-restricted.yaml")


def test_policy_without_the_tools_or_services_is_refused(tmp_path) -> None:
    no_tools = tmp_path / "p.yaml"
    no_tools.write_text("name: p\ntier: tool-restricted\ntools:\n  allow: [bash]\n")
    with pytest.raises(PolicyError) as e:
        tool_restricted_qualification(policy=str(no_tools))
    assert "tools.allow" in e.value.lines()[0] and "python" in e.value.lines()[0]
    no_api = tmp_path / "n.yaml"
    no_api.write_text(
        "name: n\ntier: networked\ntools: {allow: [bash, python]}\n"
        "network: {mode: allowlist, allow: [allowed.test], services: [db]}\n"
    )
    with pytest.raises(PolicyError, match=r"service.* api"):
        networked_qualification(policy=str(no_api))


def test_missing_policy_file_is_an_error(tmp_path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        text_only_qualification(policy=str(tmp_path / "nope.yaml"))


def test_higher_tier_policy_is_accepted_for_a_lower_tier_task() -> None:
    info = TaskInfo.of(text_only_qualification(policy="policies/tool-restricted.yaml").metadata)
    assert info is not None and info.tier == "text-only"


def test_relative_policy_argument_is_relative_to_where_the_user_is(tmp_path: Path) -> None:
    """Issue 20 item 4: `inspect eval TASK -T policy=REL` resolves REL against the directory the
    command was started in (not the task's folder, where Inspect creates the task); a task of a
    higher tier is refused under it before any container, and a missing file says where it
    was looked for."""
    import os
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    shutil.copy(repo / "policies" / "tool-restricted.yaml", tmp_path / "mine.yaml")
    (tmp_path / "tasks").symlink_to(repo / "tasks")
    env = {**os.environ, "PWD": str(tmp_path)}  # as a shell started in tmp_path sets it

    def inspect_eval(policy: str) -> str:
        r = subprocess.run(
            ["inspect", "eval", "tasks/networked/safety.py", "--model", "tierlock/diligent",
             "-T", f"policy={policy}", "--limit", "1", "--log-dir", str(tmp_path / "logs")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode != 0
        return r.stdout + r.stderr

    out = inspect_eval("mine.yaml")
    assert f"{tmp_path}/mine.yaml:8:7: tier: policy 'tool-restricted' is for the " \
        "tool-restricted tier, below the networked tier of task networked_safety" in out
    out = inspect_eval("nope.yaml")
    assert f"nope.yaml was looked for relative to the working directory {tmp_path}" in out
