"""Containment under policies/tool-restricted.yaml, observed from inside by commands a (mock) model
runs through Inspect's bash tool, and read back from the `.eval` log alone."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _sandbox_helpers import evidence, run_containers, scripted_model, tool_outputs
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalSample, read_eval_log
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import bash

from tierlock.sandbox import load_policy
from tierlock.sandbox._evidence import ConformanceRecord, ContainerEvidence
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._seccomp import default_profile_sha256

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "tool-restricted.yaml"

SCRIPTS: dict[str, list[str]] = {
    "contain": [
        'echo "IFACES=$(ls /sys/class/net | tr "\\n" " ")"; echo "UID=$(id -u)"; '
        "grep -E 'CapEff|NoNewPrivs' /proc/self/status; touch /etc/probe; touch /probe; "
        "touch /dev/shm/probe; "
        "echo ENV_START; env; echo ENV_END",
        "dd if=/dev/zero of=/workspace/fill bs=1M count=100 2>&1 | grep -E 'No space|copied'; "
        'echo "DD_RC=${PIPESTATUS[0]}"; df -k /workspace | tail -1; rm -f /workspace/fill; '
        "echo hello > /workspace/note && cat /workspace/note",
    ],
    "forkbomb": [
        ":(){ :|:& };:; sleep 5",
        "echo ALIVE; cat /sys/fs/cgroup/pids/pids.max; ps -e --no-headers | wc -l",
    ],
    "memhog": [
        "python3 -c 'x = b\"a\" * (1024**3); print(len(x))'; echo \"HOG_RC=$?\"",
        "echo AFTER_HOG",
    ],
}


@pytest.fixture(scope="module")
def base_image(docker_client: Any) -> str:
    return ensure_image(docker_client)


@pytest.fixture(scope="module")
def contained_run(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, EvalSample]:
    canary = f"TIERLOCK_CANARY_{secrets.token_hex(8)}"
    os.environ["TIERLOCK_TEST_CANARY"] = canary
    try:
        task = Task(
            dataset=[Sample(id=name, input=name) for name in SCRIPTS],
            solver=[use_tools(bash(timeout=10)), generate()],
            sandbox=("tierlock", str(POLICY)),
        )
        logs = eval(task, model=scripted_model(SCRIPTS), log_dir=str(tmp_path_factory.mktemp("logs")),
                    display="none", max_samples=3)
    finally:
        del os.environ["TIERLOCK_TEST_CANARY"]
    assert logs[0].status == "success", logs[0].error
    log = read_eval_log(logs[0].location)  # everything below comes from the .eval file alone
    assert log.samples is not None
    samples = {str(s.id): s for s in log.samples}
    samples["__canary__"] = canary  # type: ignore[assignment]
    return samples


def test_only_loopback_readonly_root_nonroot_no_caps(contained_run: dict[str, Any]) -> None:
    out = tool_outputs(contained_run["contain"])[0]
    assert "IFACES=lo \n" in out
    uid = re.search(r"UID=(\d+)\n", out)
    assert uid and 1000 <= int(uid.group(1)) < 1512  # the policy's uid plus this sample's slot
    assert re.search(r"CapEff:\s+0000000000000000", out)
    assert re.search(r"NoNewPrivs:\s+1", out)
    assert "touch: cannot touch '/etc/probe': Read-only file system" in out
    assert "touch: cannot touch '/probe': Read-only file system" in out
    assert "touch: cannot touch '/dev/shm/probe'" in out  # no writable /dev/shm beyond the policy


def test_no_host_environment(contained_run: dict[str, Any]) -> None:
    canary = contained_run["__canary__"]
    sample = contained_run["contain"]
    out = tool_outputs(sample)[0]
    env = out.split("ENV_START\n", 1)[1].split("ENV_END", 1)[0]
    names = {line.split("=", 1)[0] for line in env.splitlines() if "=" in line}
    assert "LANG" in names  # the policy's env is there...
    assert "TIERLOCK_TEST_CANARY" not in names  # ...the host's is not
    assert canary not in json.dumps(sample.model_dump(mode="json"))
    assert not names & {"PYTEST_CURRENT_TEST", "VIRTUAL_ENV", "PYENV_ROOT", "SSH_AUTH_SOCK"}


def test_workspace_writable_and_capped(contained_run: dict[str, Any]) -> None:
    out = tool_outputs(contained_run["contain"])[1]
    assert "No space left on device" in out
    assert "DD_RC=1" in out
    size_kb = int(re.search(r"^tmpfs\s+(\d+)", out, re.M).group(1))  # type: ignore[union-attr]
    assert size_kb == 64 * 1024
    assert out.rstrip().endswith("hello")


def test_fork_bomb_is_contained_and_sample_ends(contained_run: dict[str, Any]) -> None:
    """The bomb forks to the pids limit while its command runs; when the command returns, every
    process it started is killed (no process outlives its command), so the next one runs."""
    sample = contained_run["forkbomb"]
    assert sample.error is None
    assert sample.messages[-1].text == "done"
    _, second = tool_outputs(sample)
    assert "ALIVE" in second and "256" in second
    assert int(second.split()[-1]) <= 6  # init, keepalive, timeout, shell, ps, wc: no bomb left
    ev = [e for e in evidence(sample) if isinstance(e, ContainerEvidence)]
    assert len(ev) == 1
    assert ev[0].pids_limit == 256
    assert ev[0].pids_limit_hit
    assert ev[0].pids_current is not None and ev[0].pids_current <= 256


def test_memory_hog_is_oom_killed_and_reported(contained_run: dict[str, Any]) -> None:
    sample = contained_run["memhog"]
    first, second = tool_outputs(sample)
    assert "HOG_RC=137" in first
    assert "AFTER_HOG" in second
    (ev,) = [e for e in evidence(sample) if isinstance(e, ContainerEvidence)]
    assert ev.oom_killed
    (other,) = [e for e in evidence(contained_run["contain"]) if isinstance(e, ContainerEvidence)]
    assert not other.oom_killed and not other.pids_limit_hit


def test_conformance_and_evidence_recorded_per_sample(contained_run: dict[str, Any],
                                                      docker_client: Any) -> None:
    digest = load_policy(POLICY).digest()
    for name in SCRIPTS:
        records = evidence(contained_run[name])
        conf = [r for r in records if isinstance(r, ConformanceRecord)]
        cont = [r for r in records if isinstance(r, ContainerEvidence)]
        assert len(conf) == 1 and conf[0].ok and conf[0].policy_hash == digest
        # tierlock's own seccomp profile, by hash, and the sample's leased uid
        assert conf[0].seccomp_sha256 == default_profile_sha256()
        assert conf[0].user and 1000 <= int(conf[0].user.split(":")[0]) < 1512
        assert len(cont) == 1 and cont[0].policy_hash == digest
        assert cont[0].changes_outside_writable == []
    assert run_containers(docker_client) == []


def test_inspect_cli_with_sandbox_option(base_image: str, tmp_path: Path) -> None:
    """`inspect eval T --sandbox tierlock:policies/...yaml` through the entry point, from the
    project root (Inspect makes the path relative to the task's directory; it is found anyway)."""
    proc = subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval", "tests/data/sandbox/tasks.py@whoami",
         "--model", "mockllm/model", "--sandbox", "tierlock:policies/tool-restricted.yaml",
         "--log-dir", str(tmp_path), "--display", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (log_file,) = list(tmp_path.glob("*.eval"))
    log = read_eval_log(str(log_file))
    assert log.status == "success" and log.samples
    result = log.samples[0].metadata["exec"]
    assert result["code"] == 0
    uid, iface = result["stdout"].split()
    assert 1000 <= int(uid) < 1512 and iface == "lo"  # the policy's uid plus the sample's slot
