"""Aimed runs, the plan, and resuming the run you mean (issue 20 items 6-7), through the CLI.

The campaign is the small two-tier one of tests/test_runner_cli.py (tiny Inspect tasks, no
model calls, no Docker): each sample appends its id to a marks file, so what ran is visible.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.test_runner_cli import TIERLOCK, campaign, lines, records, run, tierlock


def _started(tmp_path: Path) -> list:
    return [r for r in records(tmp_path) if r.kind == "run_started"]


def test_aimed_tier_runs_only_up_to_it_and_is_partial(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {})
    res = run(tmp_path, camp, "--tier", "text-only")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "run demo-mockllm_model-aimed (partial): reached the top tier (text-only)" in res.stdout
    assert "a partial run, not a clean climb of campaign demo" in res.stdout
    assert lines(tmp_path / "first.txt") == ["1", "2"] and not lines(tmp_path / "second.txt")
    (started,) = _started(tmp_path)
    assert started.run_id == "demo-mockllm_model-aimed"
    assert started.payload["aim"] == {"tier": "text-only", "tasks": [], "limit": None,
                                      "task_args": {}}  # fmt: skip
    # a plain run never resumes the aimed one: it starts the campaign's own run
    full = run(tmp_path, camp)
    assert full.returncode == 0, full.stdout + full.stderr
    assert [r.run_id for r in _started(tmp_path)] == ["demo-mockllm_model-aimed",
                                                      "demo-mockllm_model"]  # fmt: skip
    status = tierlock(tmp_path, "status")
    assert "aimed part clean (partial: tiers up to text-only)" in status.stdout
    assert "reached the top" in status.stdout


def test_limit_and_task_args_apply_to_the_aimed_tier_and_lower_tiers_run_in_full(
    tmp_path: Path,
) -> None:
    """The promise holds for aimed runs: the tier below runs its screening in full first."""
    camp = campaign(tmp_path, {})
    res = run(tmp_path, camp, "--task", "probe", "--limit", "1", "-T", "n=5")
    assert res.returncode == 0, res.stdout + res.stderr
    assert lines(tmp_path / "first.txt") == ["1", "2"]  # text-only: both samples, n unchanged
    assert lines(tmp_path / "second.txt") == ["1"]  # the aimed tier: n=5, at most 1 sample
    (started,) = _started(tmp_path)
    assert started.payload["aim"]["task_args"] == {"n": 5}  # a YAML scalar, as Inspect reads -T
    assert started.payload["aim"]["limit"] == 1


def test_aiming_at_what_does_not_exist_is_one_line(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {})
    res = run(tmp_path, camp, "--tier", "networked")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "tierlock: campaign demo has no tier 'networked' (tiers: text-only, tool-restricted)"
    )
    res = run(tmp_path, camp, "--task", "nope")
    assert res.returncode == 1 and "has no task 'nope' (tasks: probe)" in res.stderr
    res = run(tmp_path, camp, "-T", "novalue")
    assert res.returncode == 1 and "-T 'novalue': write key=value" in res.stderr
    assert not (tmp_path / "runs" / "ledger.sqlite").exists() or not _started(tmp_path)


def test_dry_run_and_campaign_show_print_the_plan_and_start_nothing(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {}, approval=True)
    res = run(tmp_path, camp, "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "run: a new run" in out and "dry run: nothing was started" in out
    assert "tier 1: text-only" in out and "tier 2: tool-restricted" in out
    assert "text only, no sandbox" in out  # the text-only policy's grants
    assert "tools bash; network none" in out  # the tool-restricted policy's grants
    assert "approval required" in out and "thresholds: accuracy >= 1" in out
    assert not (tmp_path / "runs" / "ledger.sqlite").exists()
    assert not lines(tmp_path / "first.txt")
    show = tierlock(tmp_path, "campaign", "show", str(camp), "--model", "mockllm/model")
    assert show.returncode == 0 and show.stdout == out
    # with a ledger: what would be reused
    assert run(tmp_path, camp).returncode == 4  # waits for the approval
    again = run(tmp_path, camp, "--dry-run")
    assert "run: would resume run demo-mockllm_model" in again.stdout
    assert "reuse: clean in run demo-mockllm_model: skipped" in again.stdout
    aimed = run(tmp_path, camp, "--dry-run", "--tier", "tool-restricted", "--limit", "3")
    assert "tier 2: tool-restricted (aimed, at most 3 samples a task)" in aimed.stdout
    assert "tier 1: text-only (below the aimed tier: qualification and safety in full)" \
        in aimed.stdout


def test_resume_continues_exactly_the_run_named(tmp_path: Path) -> None:
    """Two unfinished runs (the second by --new): `resume RUN` continues the one named, status
    says each run's next step, and `resume` alone takes the newest unfinished run."""
    camp = campaign(tmp_path, {}, approval=True)
    assert run(tmp_path, camp).returncode == 4
    assert run(tmp_path, camp, "--new").returncode == 4
    status = tierlock(tmp_path, "status", "--all")
    for rid in ("demo-mockllm_model", "demo-mockllm_model-2"):
        assert f"tierlock approve {rid} --tier tool-restricted" in status.stdout
    for rid in ("demo-mockllm_model", "demo-mockllm_model-2"):
        ok = tierlock(tmp_path, "approve", rid, "--tier", "tool-restricted", "--by", "Ada",
                      "--note", "ok")  # fmt: skip
        assert ok.returncode == 0, ok.stderr
    res = tierlock(tmp_path, "resume", "demo-mockllm_model")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming run demo-mockllm_model (demo, mockllm/model)" in res.stdout
    finished = [r.run_id for r in records(tmp_path) if r.kind == "run_finished"]
    assert finished == ["demo-mockllm_model"]  # not the newer run
    res = tierlock(tmp_path, "resume")
    assert res.returncode == 0 and "resuming run demo-mockllm_model-2" in res.stdout
    res = tierlock(tmp_path, "resume")
    assert res.returncode == 1 and "every run in" in res.stderr and "has finished" in res.stderr
    res = tierlock(tmp_path, "resume", "nope")
    assert res.returncode == 1 and "no run 'nope'" in res.stderr


def test_an_interrupted_run_says_the_exact_command_that_resumes_it(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {"n": 8, "step": 0.6})
    runs = tmp_path / "elsewhere"
    assert run(tmp_path, camp, "--tier", "text-only").returncode == 0  # an aimed run exists
    cmd = [TIERLOCK, "run", str(camp), "--model", "mockllm/model", "--new",
           "--runs-dir", str(runs)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TIERLOCK_RUNS": "runs"})  # fmt: skip
    deadline = time.monotonic() + 120
    while len(lines(tmp_path / "second.txt")) < 2:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"resume it with: tierlock resume demo-mockllm_model --runs-dir {runs}" in err
    res = subprocess.run([TIERLOCK, "resume", "demo-mockllm_model", "--runs-dir", str(runs)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
