"""`tierlock selftest` against the real daemon: the shipped tool-restricted sandbox holds every
probe, and a deliberately weakened policy fails exactly where it was weakened."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tierlock.sandbox._selftest import CATEGORIES, parse_probe_lines, run_selftest

ROOT = Path(__file__).resolve().parents[1]
WEAKENED = ROOT / "tests" / "data" / "selftest" / "weakened.yaml"


def test_probe_output_is_parsed_strictly() -> None:
    good = json.dumps({"id": "syscall.mount", "held": True, "detail": "EPERM"})
    fake = '{"id": "x", "held": "yes", "detail": ""}'  # truthy but not True: not held
    out = parse_probe_lines("\n".join([good, "garbage\x1b[2J", fake]))
    assert [(p.id, p.held) for p in out] == [
        ("syscall.mount", True),
        ("selftest.output-line-2", False),
        ("x", False),
    ]


@pytest.mark.docker
def test_shipped_tool_restricted_policy_holds_every_probe(docker_client: Any) -> None:
    report = anyio.run(run_selftest, str(ROOT / "policies" / "tool-restricted.yaml"))
    assert len(report.probes) >= 80
    assert {p.category for p in report.probes} <= set(CATEGORIES) | {"selftest"}
    assert not report.failed, [(p.id, p.detail) for p in report.failed]
    ids = {p.id for p in report.probes}
    for probe in (
        "syscall.io_uring_setup",
        "socket.af-vsock",
        "ipc.sysv-shm",
        "ipc.posix-mq",
        "ipc.dev-mqueue",
        "kernel.masked.proc.cmdline",
        "cgroup.path-private",
        "namespace.cgroup-private",
        "process.no-survivor-setsid",
        "process.no-survivor-wrapper-killed",
        "samples.distinct-uid",
        "samples.inotify-not-shared",
    ):
        assert probe in ids


@pytest.mark.docker
def test_selftest_fails_on_a_weakened_policy(docker_client: Any, tmp_path: Path) -> None:
    tierlock = shutil.which("tierlock")
    assert tierlock
    proc = subprocess.run(
        [tierlock, "selftest", "--json", str(WEAKENED)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    failed = {p["id"] for p in report["probes"] if not p["held"]}
    assert {"syscall.io_uring_setup", "socket.af-vsock"} <= failed
    assert "Traceback" not in proc.stderr


BACKGROUND_ALLOW = """extends: {parent}
name: background-allowed
process:
  background: allow
"""


@pytest.mark.docker
def test_background_allow_keeps_survivors_and_lists_them(
    docker_client: Any, tmp_path: Path
) -> None:
    """With `process.background: allow` a background process survives its command, and the host
    lists it (escaped) for the transcript; `forbid` (the default) is shown by the selftest."""
    from tierlock.sandbox._provider import TierlockSandboxEnvironment as Env
    from tierlock.sandbox._reaper import list_from_host

    policy = tmp_path / "allow.yaml"
    policy.write_text(BACKGROUND_ALLOW.format(parent=ROOT / "policies" / "tool-restricted.yaml"))

    async def go() -> tuple[str, Any]:
        envs = await Env.sample_init("bg", str(policy), {})
        env = envs["default"]
        assert isinstance(env, Env)
        try:
            await env.exec(["sh", "-c", "sleep 7311 & exit 0"], timeout=10)
            ps = (await env.exec(["ps", "-eo", "args"], timeout=10)).stdout
            pid = env._box.init_pid
            uid = int(env.policy.process.user.split(":")[0])
            return ps, list_from_host(pid, uid)
        finally:
            await Env.sample_cleanup("bg", str(policy), envs, False)

    ps, listed = anyio.run(go)
    assert "sleep 7311" in ps
    assert listed is not None and any(c == b"sleep 7311" for c in listed[0])


@pytest.mark.docker
def test_a_tier_whose_sandbox_does_not_hold_does_not_start(
    docker_client: Any, tmp_path: Path
) -> None:
    """`tierlock run` runs the selftest before a sandboxed tier: on the weakened policy the tier
    never starts (exit 1, the probes named), and the failed selftest is in the ledger."""
    from tierlock.runner import Ledger

    campaign = tmp_path / "weak-host.yaml"
    campaign.write_text(
        "name: weak-host\ntiers:\n  - tier: tool-restricted\n"
        f"    policy: {WEAKENED}\n    tasks:\n"
        f"      - task: {ROOT}/tasks/tool_restricted/qualification.py"
        "@tool_restricted_qualification\n        kind: qualification\n"
    )
    tierlock = shutil.which("tierlock")
    assert tierlock
    proc = subprocess.run(
        [tierlock, "run", str(campaign), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "does not start" in proc.stderr and "containment probes" in proc.stderr
    assert "Traceback" not in proc.stderr
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        kinds = [r.kind for r in ledger.records()]
        tests = [r for r in ledger.records() if r.kind == "selftest"]
    assert "tier_started" not in kinds  # refused before anything of the tier ran
    (test,) = tests
    assert test.payload["ok"] is False and test.payload["cached"] is False
    assert "socket.af-vsock" in {f["id"] for f in test.payload["failed"]}
