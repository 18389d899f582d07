"""`tierlock run / approve / status / verify` end to end through Inspect, without Docker.

The tasks are tiny Inspect tasks written for the test (no model calls, no sandbox), run by the
real Inspect-backed executor through the CLI entry point. Resume is tested by SIGKILLing a
`tierlock run` subprocess (started in the campaign's directory) in the middle of a tier and
resuming from this process (another working directory).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import pytest

from tierlock.runner import Ledger
from tierlock.runner.cli import main

TIERLOCK = shutil.which("tierlock") or str(Path(sys.executable).parent / "tierlock")

TASKS = """
import asyncio
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import match
from inspect_ai.solver import Generate, TaskState, solver


@solver
def scripted(marks: str, step: float, wrong: bool, crash: bool):
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        await asyncio.sleep(step * int(state.sample_id))
        if crash:
            raise RuntimeError("the harness fell over")
        answer = "wrong" if wrong else state.target.text
        state.output = ModelOutput.from_content("mockllm/model", answer)
        with open(marks, "a") as f:
            f.write(f"{state.sample_id}\\n")
        return state
    return solve


@task
def probe(marks: str, n: int = 2, step: float = 0.0, wrong: bool = False, crash: bool = False):
    return Task(
        dataset=[Sample(id=i, input=f"say {i}", target=str(i)) for i in range(1, n + 1)],
        solver=scripted(marks, step, wrong, crash),
        scorer=match(),
    )
"""


def campaign(tmp_path: Path, second: dict, approval: bool = False) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "t.yaml").write_text("name: t\ntier: text-only\n")
    (tmp_path / "r.yaml").write_text("name: r\ntier: tool-restricted\ntools: {allow: [bash]}\n")
    first = {"marks": str(tmp_path / "first.txt")}
    second = {"marks": str(tmp_path / "second.txt"), **second}
    text = f"""name: demo
tiers:
  - tier: text-only
    policy: t.yaml
    tasks:
      - {{task: tasks.py@probe, kind: qualification, args: {json.dumps(first)}, thresholds: ["accuracy >= 1.0"]}}
  - tier: tool-restricted
    policy: r.yaml
    tasks:
      - {{task: tasks.py@probe, kind: safety, args: {json.dumps(second)}, thresholds: ["accuracy >= 1.0"]}}
    gate: {{approval_required: {str(approval).lower()}}}
"""
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def tierlock(tmp_path: Path, *args: str) -> Result:
    """`tierlock ARGS --runs-dir ...` in this process (as the console script runs it)."""
    argv = [TIERLOCK, *args, "--runs-dir", str(tmp_path / "runs")]
    out, err = io.StringIO(), io.StringIO()
    with (
        patch.object(sys, "argv", argv),
        patch.dict(os.environ, {"COLUMNS": "200"}),
        redirect_stdout(out),
        redirect_stderr(err),
        pytest.raises(SystemExit) as exit_,
    ):
        main()
    return Result(int(exit_.value.code or 0), out.getvalue(), err.getvalue())


def run(tmp_path: Path, camp: Path, *extra: str) -> Result:
    return tierlock(tmp_path, "run", str(camp), "--model", "mockllm/model", *extra)


def events(proc: Result) -> list[dict]:
    return [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]


def records(tmp_path: Path) -> list:
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        return list(ledger.records())


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_clean_climb_then_status_and_verify(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {})
    with patch.dict(os.environ, {"TIERLOCK_LOG_FORMAT": "json"}):  # events as JSON on stderr
        res = run(tmp_path, camp)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "reached the top tier (tool-restricted) clean" in res.stdout
    decisions = [e for e in events(res) if e["event"] == "gate_decision"]
    assert [(e["tier"], e["outcome"]) for e in decisions] == [
        ("text-only", "clean"),
        ("tool-restricted", "clean"),
    ]
    assert all(e["reasons"] for e in decisions)
    assert list((tmp_path / "runs" / "demo-mockllm_model" / "text-only").glob("*.eval"))
    status = tierlock(tmp_path, "status")
    assert status.returncode == 0
    assert "demo-mockllm_model" in status.stdout and "reached the top" in status.stdout
    verify = tierlock(tmp_path, "verify")
    assert verify.returncode == 0 and "ledger intact" in verify.stdout
    # a log changed after the fact is caught
    log = next((tmp_path / "runs" / "demo-mockllm_model" / "tool-restricted").glob("*.eval"))
    log.write_bytes(log.read_bytes() + b"\0")
    verify = tierlock(tmp_path, "verify")
    assert verify.returncode == 2 and "changed since it was recorded" in verify.stderr


def test_failed_threshold_halts_with_reasons(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {"wrong": True})
    res = run(tmp_path, camp)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "halted at tier tool-restricted" in res.stdout
    assert "task probe: threshold accuracy >= 1 not met: accuracy = 0" in res.stdout
    again = run(tmp_path, camp)  # a finished run is reported, not rerun
    assert again.returncode == 2
    assert [r.kind for r in records(tmp_path)].count("verdict") == 2


def test_harness_error_is_incomplete_never_clean(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {"crash": True, "n": 1})
    res = run(tmp_path, camp)
    assert res.returncode == 3, res.stdout + res.stderr
    verdicts = [r for r in records(tmp_path) if r.kind == "verdict"]
    assert verdicts[-1].payload["outcome"] == "incomplete"
    assert any("log status is error" in reason for reason in verdicts[-1].payload["reasons"])


def test_approval_gate_stops_until_approved(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {}, approval=True)
    res = run(tmp_path, camp)
    assert res.returncode == 4, res.stdout + res.stderr
    assert "tierlock approve demo-mockllm_model --tier tool-restricted" in res.stdout
    assert not lines(tmp_path / "second.txt")
    bad = tierlock(tmp_path, "approve", "demo-mockllm_model", "--tier", "text-only", "--by", "A",
                   "--note", "n")  # fmt: skip
    assert bad.returncode == 1 and "does not require an approval" in bad.stderr
    ok = tierlock(tmp_path, "approve", "demo-mockllm_model", "--tier", "tool-restricted",
                  "--by", "Ada", "--note", "read the text-only transcripts")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    res = run(tmp_path, camp)
    assert res.returncode == 0, res.stdout + res.stderr
    approval = next(r for r in records(tmp_path) if r.kind == "approval")
    assert approval.payload == {"by": "Ada", "note": "read the text-only transcripts"}
    assert lines(tmp_path / "first.txt") == ["1", "2"]  # the first tier ran once


def test_sigkill_mid_tier_resumes_without_redoing_work(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {"n": 8, "step": 0.6})
    cmd = [TIERLOCK, "run", str(camp), "--model", "mockllm/model",
           "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(lines(tmp_path / "second.txt")) < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = lines(tmp_path / "second.txt")
    assert len(before) < 8
    kinds = [(r.kind, r.tier) for r in records(tmp_path)]
    assert ("tier_started", "tool-restricted") in kinds
    assert ("verdict", "tool-restricted") not in kinds

    res = run(tmp_path, camp)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming run demo-mockllm_model" in res.stdout
    assert lines(tmp_path / "first.txt") == ["1", "2"]  # finished tier not rerun
    after = Counter(lines(tmp_path / "second.txt"))
    assert set(after) == {str(i) for i in range(1, 9)}
    assert any(after[s] == 1 for s in before), "no sample finished before the kill was reused"
    verdicts = [(r.tier, r.payload["outcome"]) for r in records(tmp_path) if r.kind == "verdict"]
    assert verdicts == [("text-only", "clean"), ("tool-restricted", "clean")]
    assert tierlock(tmp_path, "verify").returncode == 0


@pytest.mark.parametrize("args", [["--model", "x"], []])
def test_unknown_campaign_file_is_a_user_error(tmp_path: Path, args: list[str]) -> None:
    res = tierlock(tmp_path, "run", "missing.yaml", *args)
    assert res.returncode == 1 and "missing.yaml: cannot read campaign file" in res.stderr


def test_a_task_that_cannot_load_fails_before_anything_runs(tmp_path: Path) -> None:
    camp = campaign(tmp_path, {})
    camp.write_text(
        camp.read_text().replace("tasks.py@probe, kind: safety", "tasks.py@nope, kind: safety")
    )
    res = run(tmp_path, camp)
    assert res.returncode == 1
    assert (
        "campaign.yaml: task tasks.py@nope: cannot load (Task named 'nope' not found.)"
        in res.stderr
    )
    assert not lines(tmp_path / "first.txt")  # the first tier did not run either
    assert not (tmp_path / "runs" / "ledger.sqlite").exists()


def test_run_prints_its_head_and_a_finished_run_is_pinned(tmp_path: Path) -> None:
    """Issue 17 items 3-4 through the CLI: the head printed by `run` is what `verify
    --expect-head` checks; a changed task file refuses the finished run (exit 1); --new runs."""
    camp = campaign(tmp_path, {})
    res = run(tmp_path, camp)
    assert res.returncode == 0, res.stdout + res.stderr
    head = re.search(r"ledger head: (\d+:[0-9a-f]{64})", res.stdout)
    assert head is not None
    assert tierlock(tmp_path, "verify", "--expect-head", head.group(1)).returncode == 0
    (tmp_path / "tasks.py").write_text(TASKS + "\n# changed after the run\n")
    res = run(tmp_path, camp)
    assert res.returncode == 1
    assert re.search(r"task file \S*tasks\.py \(task probe, tier text-only\) changed", res.stderr)
    assert "since run demo-mockllm_model (top) started; run with --new" in res.stderr
    assert "Traceback" not in res.stderr
    res = run(tmp_path, camp, "--new")
    assert res.returncode == 0 and "started run demo-mockllm_model-2" in res.stdout


def test_resume_refuses_a_log_changed_since_it_was_recorded(tmp_path: Path) -> None:
    """Issue 17 item 2: the resume re-hashes the logs of the run it continues; a changed one
    stops it (exit 1) naming the record and the file, and nothing more is recorded."""
    camp = campaign(tmp_path, {}, approval=True)
    assert run(tmp_path, camp).returncode == 4
    ok = tierlock(tmp_path, "approve", "demo-mockllm_model", "--tier", "tool-restricted",
                  "--by", "Ada", "--note", "read the text-only transcripts")  # fmt: skip
    assert ok.returncode == 0 and "ledger head: " in ok.stdout
    log = next((tmp_path / "runs" / "demo-mockllm_model" / "text-only").glob("*.eval"))
    log.write_bytes(log.read_bytes() + b"\0")
    before = len(records(tmp_path))
    res = run(tmp_path, camp)
    assert res.returncode == 1
    assert re.search(r"ledger broken at record \d+ \(log_written\): cited log "
                     r"demo-mockllm_model/text-only/\S+\.eval changed", res.stderr)  # fmt: skip
    assert len(records(tmp_path)) == before
    assert not lines(tmp_path / "second.txt")


def test_a_keyed_run_needs_its_key_to_continue(tmp_path: Path) -> None:
    """Issue 17 item 3: with TIERLOCK_LEDGER_KEY every record of the run carries a mac; the run
    cannot be resumed without the key, and verify without it is not "intact" (exit 3)."""
    camp = campaign(tmp_path, {}, approval=True)
    key = {"TIERLOCK_LEDGER_KEY": "a key kept far from the runs directory"}
    with patch.dict(os.environ, key):
        assert run(tmp_path, camp).returncode == 4
        assert tierlock(tmp_path, "verify").returncode == 0
    assert all(r.mac for r in records(tmp_path))
    res = run(tmp_path, camp)  # no key: refused before anything runs or is recorded
    assert res.returncode == 1 and "the ledger is keyed (HMAC); give its key" in res.stderr
    res = tierlock(tmp_path, "verify")
    assert res.returncode == 3 and "macs could not be checked" in res.stderr


def test_resume_refuses_other_model_settings_but_not_a_longer_timeout(tmp_path: Path) -> None:
    """Issue 21: the run's model arguments and generation settings are pinned like its files;
    operational settings (retries, per-call timeout) may change when resuming."""
    camp = campaign(tmp_path, {})
    res = run(tmp_path, camp, "-M", "custom_outputs=[]")
    assert res.returncode == 0, res.stdout + res.stderr
    again = run(tmp_path, camp, "-M", "custom_outputs=[]", "--timeout", "900", "--max-retries", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    changed = run(tmp_path, camp)
    assert changed.returncode == 1
    assert "model argument custom_outputs changed ([] → unset)" in changed.stderr
    assert "run with --new" in changed.stderr and "Traceback" not in changed.stderr
