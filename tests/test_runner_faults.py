"""Fault injection on the real process and the real daemon: `tierlock run` is SIGKILLed right
after each ledger write in turn (`TIERLOCK_FAULT_AFTER`, runner/_faults.py), then run again with
the same command. The resumed run must end exactly where an uninterrupted run ends, for the
diligent and for the reckless agent, with every log audited exactly once, every verdict citing
audited logs whose hashes the ledger recorded, and no container or network left behind.

A two-tier campaign of one-sample subsets of the shipped tasks under the shipped policies
(tests/data/faults/) keeps each run to seconds; the scenarios of one agent run a few at a time.
`TIERLOCK_FAULT_JOBS` sets how many (default 3).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tierlock.runner import Ledger, Record
from tierlock.runner._faults import ENV
from tierlock.sandbox._labels import OWNER_LABEL, PROJECT_LABEL, ROLE_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DATA = Path(__file__).parent / "data" / "faults"
CAMPAIGN = DATA / "faults.campaign.yaml"
AUDIT_ONLY = DATA / "audit-only.campaign.yaml"
JOBS = int(os.environ.get("TIERLOCK_FAULT_JOBS", "3"))


@dataclass
class Run:
    code: int
    pid: int
    stdout: str
    stderr: str


def tierlock_run(runs: Path, model: str, campaign: Path, kill_after: int | None = None) -> Run:
    """`tierlock run` in a fresh process; with `kill_after`, it SIGKILLs itself right after its
    `kill_after`-th ledger append has committed."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if kill_after is not None:
        env[ENV] = f"{kill_after}@{runs / 'ledger.sqlite'}"
    argv = [sys.executable, "-c", "from tierlock.runner.cli import main; main()", "run", str(campaign)]
    argv += ["--model", model, "--runs-dir", str(runs)]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return Run(proc.returncode, proc.pid, out, err)


def records(runs: Path) -> list[Record]:
    with Ledger(runs / "ledger.sqlite") as ledger:
        return list(ledger.records())


def final(recs: list[Record]) -> dict[str, Any]:
    """Where a run ended: its run_finished payload and each tier's definitive verdict."""
    finished = [r.payload for r in recs if r.kind == "run_finished"]
    verdicts = {
        r.tier: (r.payload["outcome"], sorted(r.payload["reasons"]))
        for r in recs
        if r.kind == "verdict" and r.payload["outcome"] != "incomplete"
    }
    return {"finished": finished, "verdicts": verdicts}


def evidence_problems(recs: list[Record], tasks_per_tier: int) -> list[str]:
    """Every way the ledger's audit trail falls short of what the gate promises."""
    problems: list[str] = []
    good: dict[tuple[str | None, str], int] = {}  # (tier, sha256) -> audit_result seq
    audited = Counter()
    written = Counter((r.tier, ref.path) for r in recs if r.kind == "log_written" for ref in r.logs)
    problems += [f"log_written twice for {k}" for k, n in written.items() if n > 1]
    for r in recs:
        if r.kind == "audit_result":
            cited = {ref.path: ref.sha256 for ref in r.logs}
            for e in r.payload["logs"]:
                if cited.get(e["path"]) != e["sha256"]:
                    problems.append(f"audit_result {r.seq} does not cite what it audited")
                if e["problem"] is None:
                    audited[(r.tier, e["sha256"])] += 1
                    good.setdefault((r.tier, e["sha256"]), r.seq)
        if r.kind == "verdict" and r.payload["outcome"] != "incomplete":
            ev = r.payload.get("evidence", [])
            if r.payload["outcome"] == "clean" and len(ev) != tasks_per_tier:
                problems.append(f"clean verdict {r.seq} cites {len(ev)} logs")
            shas = {ref.path: ref.sha256 for ref in r.logs}
            for c in ev:
                seq = good.get((r.tier, c["sha256"]))
                if seq is None or seq != c["audit_result"] or seq > r.seq:
                    problems.append(f"verdict {r.seq} cites unaudited log {c['log']}")
                if shas.get(c["log"]) != c["sha256"]:
                    problems.append(f"verdict {r.seq}: cited hash differs for {c['log']}")
    problems += [f"log {k} audited {n} times" for k, n in audited.items() if n > 1]
    return problems


def leftovers(client, pids: set[int]) -> list[str]:
    """Containers and networks created by the given (ended) processes that still exist."""

    def mine(labels: dict[str, str] | None) -> bool:
        owner = (labels or {}).get(OWNER_LABEL, "")
        parts = owner.split("/")
        return len(parts) == 4 and parts[2].isdigit() and int(parts[2]) in pids

    flt = {"label": f"{PROJECT_LABEL}=tierlock"}
    found = [
        c["Names"][0] for c in client.api.containers(all=True, filters=flt) if mine(c["Labels"])
    ]
    found += [
        n["Name"]
        for n in client.api.networks(filters=flt)
        if mine(n.get("Labels")) and (n.get("Labels") or {}).get(ROLE_LABEL) != "egress"
    ]
    return found


def kill_and_resume(root: Path, model: str, campaign: Path, k: int) -> tuple[Run, Run, list]:
    runs = root / f"kill-{k}"
    killed = tierlock_run(runs, model, campaign, kill_after=k)
    at_kill = records(runs) if (runs / "ledger.sqlite").exists() else []
    resumed = tierlock_run(runs, model, campaign)
    return killed, resumed, at_kill


@pytest.mark.parametrize("model", ["tierlock/diligent", "tierlock/reckless"])
def test_kill_at_every_ledger_write_then_resume(tmp_path: Path, docker_client, model) -> None:
    started = time.monotonic()
    base = tierlock_run(tmp_path / "baseline", model, CAMPAIGN)
    assert base.code == (0 if model == "tierlock/diligent" else 2), base.stdout + base.stderr
    base_recs = records(tmp_path / "baseline")
    expected = final(base_recs)
    assert not evidence_problems(base_recs, 2)
    points = len(base_recs)
    assert points >= 10  # run_started, 2 x (tier_started, 2 log_written, audit, verdict), finished

    with ThreadPoolExecutor(JOBS) as pool:
        done = list(
            pool.map(lambda k: kill_and_resume(tmp_path, model, CAMPAIGN, k), range(1, points + 1))
        )

    failures: list[str] = []
    pids = {base.pid}
    for k, (killed, resumed, at_kill) in enumerate(done, start=1):
        pids |= {killed.pid, resumed.pid}
        point = f"kill after write {k} ({base_recs[k - 1].kind} {base_recs[k - 1].tier or ''})"
        if killed.code != -signal.SIGKILL or len(at_kill) != k:
            failures.append(f"{point}: not killed there (exit {killed.code}, {len(at_kill)} rows)")
            continue
        if resumed.code != base.code:
            failures.append(f"{point}: resume exit {resumed.code}\n{resumed.stdout[-2000:]}")
        recs = records(tmp_path / f"kill-{k}")
        if final(recs) != expected:
            failures.append(f"{point}: ended {final(recs)}, uninterrupted {expected}")
        failures += [f"{point}: {p}" for p in evidence_problems(recs, 2)]
        with Ledger(tmp_path / f"kill-{k}" / "ledger.sqlite") as ledger:
            if not ledger.verify().ok:
                failures.append(f"{point}: ledger does not verify")
    left = leftovers(docker_client, pids)
    print(f"\n{model}: {points} kill points, {time.monotonic() - started:.0f} s with {JOBS} jobs")
    assert not failures, "\n".join(failures)
    assert left == []


def test_crash_after_a_tiers_first_log_cannot_turn_an_audit_halt_into_clean(
    tmp_path: Path, docker_client
) -> None:
    """Issue 17's defect: no thresholds, so only the audit halts the reckless agent (in the
    tool-restricted tier). Killed right after that tier's first log_written, the resumed run
    gets the finished logs back from Inspect as `file:` URIs; it must still halt there, on
    findings from audited logs whose hashes the ledger recorded."""
    runs = tmp_path / "runs"
    kill_at = 9  # run_started, text-only (tier_started, 2 x log_written, audit, verdict), tool
    # selftest, tool tier_started, then its first log_written
    killed = tierlock_run(runs, "tierlock/reckless", AUDIT_ONLY, kill_after=kill_at)
    at_kill = records(runs)
    assert killed.code == -signal.SIGKILL, killed.stderr[-2000:]
    assert [(r.kind, r.tier) for r in at_kill[-2:]] == [
        ("tier_started", "tool-restricted"),
        ("log_written", "tool-restricted"),
    ]
    resumed = tierlock_run(runs, "tierlock/reckless", AUDIT_ONLY)
    assert resumed.code == 2, resumed.stdout + resumed.stderr
    recs = records(runs)
    tool = [r for r in recs if r.kind == "verdict" and r.tier == "tool-restricted"]
    assert [v.payload["outcome"] for v in tool] in (["failed"], ["unsafe"])
    assert any("network finding" in reason for reason in tool[0].payload["reasons"])
    assert len(tool[0].payload["evidence"]) == 2
    assert not evidence_problems(recs, 2)
    assert "halted at tier tool-restricted" in resumed.stdout
    assert leftovers(docker_client, {killed.pid, resumed.pid}) == []
