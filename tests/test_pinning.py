"""A run is pinned to what it was started with (issue 17 item 4): resuming or re-running a
finished, halted or waiting run after its campaign, effective policy (an `extends` parent
included), seccomp profile, task file or task data changed refuses and names the change;
`--new` starts a fresh run. The tier loop and ledger are the real ones; Inspect is faked."""

from __future__ import annotations

from pathlib import Path

import pytest
from _runner_fakes import FakeExecutor, fake_audit

from tierlock.runner import Ledger, load_campaign, run_campaign
from tierlock.runner._run import _policy_hashes
from tierlock.sandbox import TierlockError

SECCOMP = (
    '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": '
    '[{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}\n'
)


APPROVAL = 'approvers:\n  - name: auto\n    tools: "*"\n    decision: approve\n'


def write(root: Path, approval: bool = False) -> Path:
    """Two tiers; the tool tier's policy extends a parent and names a seccomp profile; both
    tasks live in one task file with a data folder beside it."""
    pol, tasks = root / "policies", root / "tasks"
    (tasks / "data").mkdir(parents=True)
    pol.mkdir()
    (pol / "text.policy.yaml").write_text(  # the ladder wants the same approval all the way up
        "name: text\ntier: text-only\ntools: {approval: approve.yaml}\n"
    )
    (pol / "base.policy.yaml").write_text(
        "name: base\ntier: tool-restricted\ntools: {allow: [bash]}\nlimits: {pids: 64}\n"
    )
    (pol / "tool.policy.yaml").write_text(
        "extends: base.policy.yaml\nname: tool\nprocess: {seccomp: profile.json}\n"
        "tools: {allow: [bash], approval: approve.yaml}\n"
    )
    (pol / "profile.json").write_text(SECCOMP)
    (pol / "approve.yaml").write_text(APPROVAL)
    (tasks / "probe.py").write_text("# the tasks (the fake executor does not load them)\n")
    (tasks / "data" / "items.json").write_text('["one", "two"]\n')
    path = root / "campaign.yaml"
    path.write_text(
        f"""name: pinned
tiers:
  - tier: text-only
    policy: policies/text.policy.yaml
    tasks:
      - {{task: tasks/probe.py@text_probe, kind: qualification, thresholds: ["accuracy >= 0.9"]}}
  - tier: tool-restricted
    policy: policies/tool.policy.yaml
    tasks:
      - {{task: tasks/probe.py@tool_probe, kind: qualification, thresholds: ["accuracy >= 0.9"]}}
    gate: {{approval_required: {str(approval).lower()}}}
"""
    )
    return path


def climb(path: Path, ledger: Ledger, **kw):  # type: ignore[no-untyped-def]
    return run_campaign(
        load_campaign(path), "m", ledger=ledger, runs_dir=ledger.path.parent,
        executor=FakeExecutor(), auditor=fake_audit, **kw,
    )  # fmt: skip


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


CHANGES = {
    "parent": (
        lambda r: _edit(r / "policies/base.policy.yaml", "pids: 64", "pids: 32"),
        r"the tool-restricted policy policies/tool\.policy\.yaml \(effective policy, via its "
        r"parent policies/base\.policy\.yaml\) changed",
    ),
    "child": (
        lambda r: _edit(
            r / "policies/text.policy.yaml",
            "tier: text-only",
            "tier: text-only\nlimits: {command_timeout: 5s}",
        ),
        r"the text-only policy policies/text\.policy\.yaml \(effective policy, its own content\) "
        r"changed",
    ),
    "seccomp": (
        lambda r: _edit(r / "policies/profile.json", '"read", ', '"read", "mkdir", '),
        r"the tool-restricted policy policies/tool\.policy\.yaml: its seccomp profile "
        r"policies/profile\.json changed",
    ),
    "approval": (
        lambda r: _edit(r / "policies/approve.yaml", "decision: approve", "decision: reject"),
        r"the tool-restricted policy policies/tool\.policy\.yaml: its approval file "
        r"policies/approve\.yaml changed",
    ),
    "task-file": (
        lambda r: _edit(r / "tasks/probe.py", "# the tasks", "# the changed tasks"),
        r"task file tasks/probe\.py \(task text_probe, tier text-only\) changed",
    ),
    "task-data": (
        lambda r: (r / "tasks/data/extra.json").write_text("[]"),
        r"task data tasks/data/ \(task tool_probe, tier tool-restricted\) changed",
    ),
    "campaign": (
        lambda r: _edit(r / "campaign.yaml", "accuracy >= 0.9", "accuracy >= 0.5"),
        r"campaign pinned \(campaign\.yaml\): tier text-only \(its tasks, gate or limits\) changed",
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_finished_run_refuses_to_rerun_after_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.chdir(tmp_path)  # messages name files relative to the working directory
    camp = write(tmp_path)
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        first = climb(camp, ledger)
        assert first.status == "top"
        assert climb(camp, ledger) == first  # unchanged: the finished outcome is reported
        mutate, message = CHANGES[change]
        mutate(tmp_path)
        before = len(list(ledger.records()))
        with pytest.raises(TierlockError, match=message) as e:
            climb(camp, ledger)
        assert f"since run {first.run_id} (top) started; run with --new" in str(e.value)
        assert len(list(ledger.records())) == before  # nothing recorded
        fresh = climb(camp, ledger, new=True)
        assert fresh.run_id != first.run_id and fresh.status == "top"
        assert climb(camp, ledger) == fresh  # the new run is pinned to the new files


def test_a_comment_changes_no_pin(tmp_path: Path) -> None:
    camp = write(tmp_path)
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        first = climb(camp, ledger)
        with (tmp_path / "policies" / "base.policy.yaml").open("a") as f:
            f.write("# a comment changes nothing the sandbox does\n")
        assert climb(camp, ledger) == first


def test_a_waiting_run_refuses_to_resume_after_a_change(tmp_path: Path) -> None:
    camp = write(tmp_path, approval=True)
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        assert climb(camp, ledger).status == "awaiting_approval"
        _edit(tmp_path / "policies/profile.json", '"read", ', '"read", "ptrace", ')
        with pytest.raises(TierlockError, match=r"its seccomp profile .* changed since run"):
            climb(camp, ledger)


def test_a_run_recorded_before_pins_falls_back_to_the_old_check(tmp_path: Path) -> None:
    camp_path = write(tmp_path, approval=True)
    camp = load_campaign(camp_path)
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        ledger.append(  # what tierlock wrote before pins existed
            "run_started", run_id="pinned-m", campaign="pinned", model="m",
            payload={
                "campaign_file": camp.source,
                "campaign_digest": camp.digest(),
                "policy_sha256": _policy_hashes(camp),
                "tiers": [{"tier": t.tier, "approval_required": t.gate.approval_required}
                          for t in camp.tiers],
            },
        )  # fmt: skip
        out = climb(camp_path, ledger)
        assert (out.run_id, out.status) == ("pinned-m", "awaiting_approval")  # resumed
        with (tmp_path / "policies" / "text.policy.yaml").open("a") as f:
            f.write("# the old check compares the policy file's bytes\n")
        with pytest.raises(TierlockError, match=r"the text-only policy .* changed since run"):
            climb(camp_path, ledger)


def test_a_moved_checkout_keeps_its_runs(tmp_path: Path) -> None:
    """Pins compare content, not paths: the same files elsewhere are the same run."""
    camp = write(tmp_path / "a")
    with Ledger(tmp_path / "a" / "runs" / "ledger.sqlite") as ledger:
        first = climb(camp, ledger)
    (tmp_path / "a").rename(tmp_path / "b")
    with Ledger(tmp_path / "b" / "runs" / "ledger.sqlite") as ledger:
        assert ledger.verify().verified  # log paths are stored relative to the ledger
        assert climb(tmp_path / "b" / "campaign.yaml", ledger) == first
