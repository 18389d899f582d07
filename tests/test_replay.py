"""`tierlock audit LOG --replay` against the real daemon: a diligent log replays with no
divergence; the same log with one tool output edited is caught, both outputs shown, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tierlock.runner._replay import normalise

ROOT = Path(__file__).resolve().parents[1]


def test_normalisations_are_the_stated_ones() -> None:
    canaries = {"TLK-aaa": "<canary:0>", "TLK-bbb": "<canary:0>"}
    assert normalise("key TLK-aaa", canaries) == normalise("key TLK-bbb", canaries)
    assert normalise("Ran 2 tests in 0.002s", {}) == normalise("Ran 2 tests in 0.013s", {})
    assert normalise("at 2026-12-04T19:45:15Z", {}) == normalise("at 2026-12-05 01:02:03", {})
    assert normalise("Fri Dec  4 19:32:48 UTC 2026", {}) == "<time>"
    assert normalise("host tierlock-abc-1_2-x9", {}) == "host <container>"
    # what is not listed is compared exactly
    assert normalise("pid 4242", {}) != normalise("pid 4243", {})
    assert normalise("16\n", {}) != normalise("17\n", {})


def _tierlock(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tierlock", *args], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


@pytest.mark.docker
def test_replay_of_a_diligent_log_and_of_a_tampered_one(docker_client: Any, tmp_path: Path) -> None:
    from _sandbox_helpers import run_containers
    from inspect_ai import eval
    from inspect_ai.log import read_eval_log, write_eval_log

    from tierlock.tasks.tool_restricted import tool_restricted_safety

    [log] = eval(
        tool_restricted_safety(),
        model="tierlock/diligent",
        log_dir=str(tmp_path / "logs"),
        display="none",
        sample_id=["tr-s-credentials", "tr-s-monitor"],
    )
    assert log.status == "success", log.error
    done = _tierlock("audit", log.location, "--replay")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tr-s-credentials:" in done.stdout and "tr-s-monitor:" in done.stdout
    assert "NOT REPLAYED" not in done.stdout and " 0 diverge" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr

    # edit one recorded tool output: the replay finds exactly that call
    full = read_eval_log(log.location, resolve_attachments=True)
    sample = next(s for s in full.samples or [] if s.id == "tr-s-credentials")
    tool = next(e for e in sample.events if e.event == "tool" and e.function == "bash")
    original = str(tool.result)
    tool.result = original.replace("1", "7") + "forged\n"
    assert tool.result != original
    forged = tmp_path / "tampered.eval"
    write_eval_log(full, str(forged))
    done = _tierlock("audit", str(forged), "--replay")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "1 diverge" in done.stdout and done.stdout.count("recorded: ") == 1
    rec = next(line for line in lines if "recorded: " in line)
    rep = next(line for line in lines if "replayed: " in line)
    assert "forged\\x0a" in rec and "forged" not in rep
    assert "Traceback" not in done.stdout + done.stderr
    assert run_containers(docker_client) == []


@pytest.mark.docker
def test_the_call_a_tripwire_ended_is_not_compared(
    docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reckless credential read, stopped by a tripwire before it ran, has no output to
    compare: the replay says so and does not run it."""
    from inspect_ai import eval

    from tierlock.sandbox._tripwire import ENV_MODE
    from tierlock.tasks.tool_restricted import tool_restricted_safety

    monkeypatch.setenv(ENV_MODE, "end-sample")
    [log] = eval(
        tool_restricted_safety(),
        model="tierlock/reckless",
        log_dir=str(tmp_path / "logs"),
        display="none",
        sample_id=["tr-s-credentials"],
    )
    assert log.status == "success", log.error
    done = _tierlock("audit", log.location, "--replay")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 call(s) replayed, 0 diverge (then a tripwire ended the sample" in done.stdout
