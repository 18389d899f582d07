"""Host-aware policy checks and Docker's refusals: what the Docker host cannot give a policy is a
policy error naming the field (at `policy check`, before a run, or when Docker refuses the
container), never a tier that stays "incomplete, run again"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tierlock.sandbox import load_policy_file
from tierlock.sandbox._docker import create_container
from tierlock.sandbox._host_check import (
    REFUSAL_TAG,
    EngineRefused,
    HostFacts,
    docker_reason,
    engine_refusal,
    host_problems,
    raise_if_refused,
    refused_field,
)
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import object_labels
from tierlock.sandbox._provider import TierlockSandboxEnvironment

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "policies" / "tool-restricted.yaml"
INFO = {"NCPU": 2, "Runtimes": {"runc": {}, "io.containerd.runc.v2": {}},
        "SecurityOptions": ["name=seccomp,profile=default"], "MemoryLimit": True,
        "SwapLimit": True, "PidsLimit": True, "CpuCfsQuota": True}  # fmt: skip


def _policy(tmp: Path, body: str, name: str = "p") -> Path:
    p = tmp / f"{name}.policy.yaml"
    p.write_text(f"name: {name}\nextends: {SHIPPED}\ntier: tool-restricted\n{body}")
    return p


def _problems(path: Path, info: dict[str, Any] = INFO, local: bool = True) -> list[str]:
    loaded = load_policy_file(path)
    return [
        str(p) for p in host_problems(loaded.policy, HostFacts.from_info(info, local=local), loaded)
    ]


# --- pure logic --------------------------------------------------------------------------------


def test_shipped_policies_fit_the_host() -> None:
    for name in ("text-only", "tool-restricted", "networked"):
        assert _problems(ROOT / "policies" / f"{name}.yaml") == []


def test_each_host_misfit_names_file_line_and_field(tmp_path: Path) -> None:
    p = _policy(
        tmp_path,
        "limits:\n  cpus: 4\nprocess:\n  runtime: runsc\n  apparmor: tierlock\n"
        "filesystem:\n  mounts:\n    - {source: /nonexistent/x, target: /data}\n",
    )
    got = _problems(p)
    assert any(
        line.startswith(
            f"{tmp_path}/p.policy.yaml:5:9: limits.cpus: 4 CPUs is more than "
            "the Docker host has (2)"
        )
        for line in got
    ), got
    assert any(
        ":7:12: process.runtime: runtime 'runsc' is not installed in the Docker daemon "
        "(it has: io.containerd.runc.v2, runc)" in line
        for line in got
    ), got
    assert any(
        "process.apparmor: AppArmor is not enabled on the Docker host" in line for line in got
    ), got
    assert any(
        "filesystem.mounts[0].source: /nonexistent/x does not exist" in line for line in got
    ), got
    assert len(got) == 4
    # a remote daemon's paths are not this machine's: not checked here
    assert not any("mounts" in line for line in _problems(p, local=False))


def test_limits_the_kernel_cannot_enforce_and_a_foreign_seccomp_default(tmp_path: Path) -> None:
    info = {
        **INFO,
        "PidsLimit": False,
        "SwapLimit": False,
        "SecurityOptions": ["name=seccomp,profile=/etc/docker/open.json"],
    }
    got = _problems(SHIPPED, info)
    assert any(
        "limits.pids: the Docker host's kernel does not support pids limits" in x for x in got
    ), got
    assert any(
        "warning: limits.memory: the Docker host's kernel does not limit swap" in x for x in got
    ), got
    assert any(
        "process.seccomp: the Docker daemon's default seccomp profile is" in x for x in got
    ), got


def test_text_only_policies_make_no_container_and_are_not_host_checked(tmp_path: Path) -> None:
    p = tmp_path / "t.policy.yaml"
    p.write_text(
        f"name: t\nextends: {ROOT / 'policies' / 'text-only.yaml'}\ntier: text-only\n"
        "limits:\n  cpus: 64\n"
    )
    assert _problems(p) == []


@pytest.mark.parametrize(
    ("explanation", "field", "reason"),
    [
        (
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
            ("limits", "cpus"),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs",
        ),
        ("Unknown runtime specified runsc", ("process", "runtime"), "Unknown runtime"),
        ("Minimum memory limit allowed is 6MB", ("limits", "memory"), "Minimum memory"),
        (
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to "
            "start container process: error during container init: error setting cgroup config for "
            'procHooks process: failed to write "100": write /sys/fs/cgroup/cpu/docker/'
            + "a" * 64
            + "/cpu.cfs_quota_us: invalid argument: unknown",
            ("limits", "cpus"),
            'error setting cgroup config for procHooks process: failed to write "100": write '
            "/sys/fs/cgroup/cpu/docker/<id>/cpu.cfs_quota_us: invalid argument",
        ),
        (
            'invalid mount config for type "bind": bind source path does not exist: /x',
            ("filesystem", "mounts"),
            "bind source path does not exist",
        ),
        (
            'error gathering device information while adding custom device "/dev/x": no such file',
            ("process", "devices"),
            "custom device",
        ),
        ("something new", None, "something new"),
    ],
)
def test_docker_reasons_map_to_policy_fields(explanation: str, field: Any, reason: str) -> None:
    short = docker_reason(explanation)
    assert reason in short and "shim task" not in short and len(short) <= 240
    assert refused_field(short) == field


def test_a_refusal_in_a_recorded_error_becomes_a_policy_error() -> None:
    from tierlock.sandbox import PolicyError

    raise_if_refused([None, "RuntimeError('boom')"])  # other errors stay harness errors
    line = f"p.yaml:3:4: limits.cpus: {REFUSAL_TAG} (create, HTTP 400): Range of CPUs [x]"
    with pytest.raises(PolicyError, match=r"limits\.cpus: Docker refused"):
        raise_if_refused(["RuntimeError('boom')", f"Traceback...\n{line}\n"])


# --- real daemon ---------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize(
    ("settings", "start", "field"),
    [
        ({"runtime": "tierlock-absent-runtime"}, False, "process.runtime"),  # runsc may be there
        ({"mem_limit": 1, "memswap_limit": 1}, False, "limits.memory"),
        ({"nano_cpus": 64 * 10**9}, False, "limits.cpus"),
        ({"nano_cpus": 10**6}, True, "limits.cpus"),  # refused only at start (cfs quota < 1ms)
        ({"devices": ["/dev/tierlock-none"]}, True, "process.devices"),
    ],
)
def test_real_docker_refusals_name_the_policy_field(
    docker_client: Any, settings: dict[str, Any], start: bool, field: str
) -> None:
    import docker.errors

    from tierlock.sandbox._translate import container_settings

    p = load_policy_file(SHIPPED).policy
    base = container_settings(
        p, image=ensure_image(docker_client), labels=object_labels(role="test"), sandbox=True
    )
    container = None
    with pytest.raises(docker.errors.APIError) as err:
        container = create_container(docker_client, {**base, **settings})
        try:
            container.start()
        finally:
            container.remove(force=True)
    assert (container is not None) == start
    refusal = engine_refusal(err.value, SHIPPED, "start" if start else "create")
    assert isinstance(refusal, EngineRefused)
    line = str(refusal)
    assert f": {field}: {REFUSAL_TAG}" in line and "\n" not in line, line
    assert refusal.message == line  # what Inspect records as the sample's error


@pytest.mark.docker
def test_provider_turns_a_refused_start_into_engine_refused(
    docker_client: Any, tmp_path: Path
) -> None:
    from _sandbox_helpers import run_containers

    ensure_image(docker_client)
    p = _policy(
        tmp_path,
        "process:\n  devices: [/dev/tierlock-none]\nunsafe:\n  allow: "
        "[devices]\n  reason: a device that does not exist, for Docker to refuse\n",
    )

    async def init() -> None:
        await TierlockSandboxEnvironment.sample_init("refused", str(p), {})

    with pytest.raises(
        EngineRefused,
        match=r"p\.policy\.yaml:5:12: process\.devices: Docker "
        r"refused the sandbox container \(start, HTTP 500\)",
    ):
        anyio.run(init)
    assert run_containers(docker_client) == []


def _campaign(tmp: Path, policy: Path) -> Path:
    c = tmp / "c.campaign.yaml"
    c.write_text(
        "name: refused\ntiers:\n  - tier: tool-restricted\n"
        f"    policy: {policy}\n    tasks:\n"
        f"      - task: {ROOT / 'tasks/tool_restricted/qualification.py'}"
        "@tool_restricted_qualification\n        kind: qualification\n"
        '        thresholds: ["task_completed/accuracy >= 0.9"]\n'
        "    gate: {max_severity: none, approval_required: false}\n"
    )
    return c


def _tierlock(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "tierlock"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.docker
def test_a_run_docker_refuses_ends_with_exit_1_naming_the_field(
    docker_client: Any, tmp_path: Path
) -> None:
    """Docker refuses every sandbox of the tier at start: the run stops with exit 1 and the
    policy line, not "incomplete, run again"; running again says the same."""
    p = _policy(
        tmp_path,
        "process:\n  devices: [/dev/tierlock-none]\nunsafe:\n  allow: "
        "[devices]\n  reason: a device that does not exist, for Docker to refuse\n",
    )
    c = _campaign(tmp_path, p)
    for _ in range(2):
        r = _tierlock("run", str(c), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr and "incomplete" not in r.stdout
        assert (
            "process.devices: Docker refused the sandbox container (start, HTTP 500): error "
            'gathering device information while adding custom device "/dev/tierlock-none"'
            in r.stderr
        ), r.stderr


@pytest.mark.docker
def test_policy_check_and_run_preflight_report_host_misfits(
    docker_client: Any, tmp_path: Path
) -> None:
    p = _policy(tmp_path, "limits:\n  cpus: 1000\n")
    r = _tierlock("policy", "check", str(p), cwd=tmp_path)
    assert r.returncode == 1 and "limits.cpus: 1000 CPUs is more than the Docker host" in r.stderr
    assert "FAILED: 1 file checked, 1 error(s)" in r.stdout
    assert _tierlock("policy", "check", "--no-host", str(p), cwd=tmp_path).returncode == 0
    r = _tierlock(
        "run", str(_campaign(tmp_path, p)), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path
    )
    assert r.returncode == 1 and "limits.cpus: 1000 CPUs is more than" in r.stderr, r.stderr
    assert "started run" not in r.stdout  # refused before anything ran


@pytest.mark.docker
def test_inspect_eval_with_a_misfit_policy_stops_at_task_init(
    docker_client: Any, tmp_path: Path
) -> None:
    """Used straight from Inspect (no tierlock task, no runner), the provider's `task_init`
    refuses a policy the host cannot run before any sample starts."""
    from _sandbox_helpers import run_containers, scripted_model
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    from tierlock.sandbox import PolicyError

    p = _policy(tmp_path, "limits:\n  cpus: 64\n")  # runsc may be registered (gvisor_setup.sh)
    task = Task(
        dataset=[Sample(id="s", input="go")],
        solver=[use_tools(bash()), generate()],
        sandbox=("tierlock", str(p)),
    )
    calls: list[str] = []
    with pytest.raises(PolicyError, match=r"limits\.cpus: 64 CPUs is more than the Docker host"):
        eval(
            task,
            model=scripted_model({"go": ["id"]}, calls),
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
    assert calls == [] and run_containers(docker_client) == []
