"""gVisor (`process.runtime: runsc`): conformance reads back that a sandbox really runs under
gVisor (HostConfig.Runtime and the kernel its commands meet), a daemon without runsc refuses the
policy before the first sample, and, where runsc runs on this host, real sandboxes under it.

The runsc tests need runsc installed (tests/install-deps.sh) and registered with the daemon
(tests/gvisor_setup.sh, which the `runsc_image` fixture calls); they skip only when runsc cannot
run a container here, with Docker's error as the reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tierlock.sandbox import PolicyError, SandboxError, load_policy
from tierlock.sandbox._conformance_kernel import check_runtime_probe
from tierlock.sandbox._docker import create_container
from tierlock.sandbox._host_check import require_host_fit
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import object_labels
from tierlock.sandbox._sample_conform import kernel_check
from tierlock.sandbox._translate import container_settings

ROOT = Path(__file__).resolve().parents[1]
STRICT = ROOT / "policies" / "tool-restricted.yaml"
NETWORKED_GVISOR = ROOT / "tests" / "data" / "policies" / "networked-gvisor.yaml"
HOST_KERNEL = "6.1.0-test-amd64"
GVISOR_KERNEL = "4.4.0"

RUNSC_STRICT = f"extends: {STRICT}\nname: strict-gvisor\nprocess:\n  runtime: runsc\n"
RUNSC_NO_OCI_SECCOMP = (
    RUNSC_STRICT.replace("strict-gvisor", "gvisor-sentry-filter") + "  seccomp: unconfined\n"
    "unsafe:\n  allow: [seccomp-unconfined]\n"
    "  reason: runsc does not apply the OCI seccomp profile to exec'd commands here\n"
)
"""The one runsc policy that can conform on this host (README known limits): gVisor's Sentry,
not an OCI seccomp filter, stands between the commands and the host kernel."""


def _write(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(body)
    return path


# --- pure logic ----------------------------------------------------------------------------------


def test_runtime_probe_requires_gvisors_kernel_for_runsc_and_the_hosts_for_runc(
    tmp_path: Path,
) -> None:
    runsc = load_policy(_write(tmp_path, "g", RUNSC_STRICT))
    runc = load_policy(STRICT)
    assert check_runtime_probe(f"{GVISOR_KERNEL}\n1\n", runsc, HOST_KERNEL) == ([], True)
    assert check_runtime_probe(f"{HOST_KERNEL}\n0\n", runc, HOST_KERNEL) == ([], False)
    bad, _ = check_runtime_probe(f"{HOST_KERNEL}\n1\n", runsc, HOST_KERNEL)
    assert bad and "not gVisor's" in bad[0] and "process.runtime wants runsc" in bad[0]
    bad, _ = check_runtime_probe(f"{GVISOR_KERNEL}\n1\n", runc, HOST_KERNEL)
    assert bad and "process.runtime wants runc" in bad[0]


@pytest.mark.parametrize("output", ["", "4.4.0\n", "Traceback (most recent call last)\nboom\n"])
def test_an_unreadable_runtime_probe_is_a_mismatch(tmp_path: Path, output: str) -> None:
    runsc = load_policy(_write(tmp_path, "g", RUNSC_STRICT))
    bad, nnp = check_runtime_probe(output, runsc, HOST_KERNEL)
    assert len(bad) == 1 and "cannot read the kernel release" in bad[0] and nnp is False


class _DaemonWithout:
    """A Docker client whose daemon lists only runc (what `docker info` says without runsc)."""

    def info(self) -> dict[str, Any]:
        return {"NCPU": 2, "Runtimes": {"runc": {"path": "runc"}}, "SecurityOptions": []}


def test_a_daemon_without_runsc_refuses_the_gvisor_example_in_one_line() -> None:
    with pytest.raises(PolicyError) as err:
        require_host_fit(NETWORKED_GVISOR, _DaemonWithout())  # type: ignore[arg-type]
    line = str(err.value)
    assert "\n" not in line and "networked-gvisor.yaml:" in line, line
    assert "process.runtime: runtime 'runsc' is not installed in the Docker daemon" in line


# --- real daemon, runc -----------------------------------------------------------------------------


def _started(client: Any, policy_path: Path, runtime: str | None = None) -> Any:
    settings = container_settings(
        load_policy(policy_path),
        image=ensure_image(client),
        labels=object_labels(role="test"),
        sandbox=True,
    )
    container = create_container(client, {**settings, **({"runtime": runtime} if runtime else {})})
    container.start()
    return container


@pytest.mark.docker
def test_a_runsc_policy_on_a_runc_container_does_not_conform(
    docker_client: Any, tmp_path: Path
) -> None:
    """The silent downgrade: a container runc runs, checked against a policy asking for runsc."""
    container = _started(docker_client, STRICT)
    try:
        runsc = load_policy(_write(tmp_path, "g", RUNSC_STRICT))
        bad = kernel_check(docker_client, container.id, runsc)
        assert any(m.startswith("runtime: commands run on the host's kernel") for m in bad), bad
        assert kernel_check(docker_client, container.id, load_policy(STRICT)) == []
    finally:
        container.remove(force=True)


# --- real daemon, runsc ----------------------------------------------------------------------------


def _runsc_registered(client: Any) -> bool:
    return "runsc" in (client.info().get("Runtimes") or {})


@pytest.fixture(scope="module")
def runsc_image(docker_client: Any) -> str:
    """The base image, once runsc is registered and has run a container; else skip with why."""
    if shutil.which("runsc") is None and not Path("/usr/bin/runsc").exists():
        pytest.skip("runsc is not installed (tests/install-deps.sh installs it)")
    if not _runsc_registered(docker_client):
        setup = subprocess.run(
            ["bash", str(ROOT / "tests" / "gvisor_setup.sh")], capture_output=True, text=True
        )
        if setup.returncode != 0:
            pytest.skip(f"cannot register runsc: {setup.stderr.strip()}")
    image = ensure_image(docker_client)
    probe = subprocess.run(
        ["docker", "run", "--rm", "--runtime", "runsc", "--network", "none", image, "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(f"runsc cannot run a container on this host: {probe.stderr.strip()[-300:]}")
    return image


@pytest.mark.docker
def test_a_runsc_container_conforms_and_shows_gvisors_kernel(
    docker_client: Any, runsc_image: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "g", RUNSC_NO_OCI_SECCOMP)
    container = _started(docker_client, path)
    try:
        assert docker_client.api.inspect_container(container.id)["HostConfig"]["Runtime"] == "runsc"
        assert kernel_check(docker_client, container.id, load_policy(path)) == []
        # the same container is not what a runc policy describes
        policy = load_policy(path)
        runc_twin = policy.model_copy(
            update={"process": policy.process.model_copy(update={"runtime": "runc"})}
        )
        # (the host's /proc shows gVisor's sandbox process, not a keepalive run by a runc policy)
        assert kernel_check(docker_client, container.id, runc_twin) != []
        dmesg = container.exec_run(["dmesg"], user="0").output.decode(errors="replace")
        assert "Starting gVisor" in dmesg, dmesg[:300]
    finally:
        container.remove(force=True)


@pytest.mark.docker
@pytest.mark.parametrize(
    "policy",
    [
        "strict",
        "networked-example",
    ],
)
def test_a_runsc_sandbox_never_runs_weaker_than_its_policy(
    docker_client: Any, runsc_image: str, tmp_path: Path, policy: str
) -> None:
    """Through the provider, as a sample would: either the sandbox conforms and the model's
    commands really meet gVisor with the seccomp filter the policy asks for, or the sample stops
    before the model's first command with one line saying why (README known limits: here runsc
    starts commands without the OCI seccomp filter, and the proxy's pids limit stops gVisor)."""
    from tierlock.sandbox._provider import TierlockSandboxEnvironment as Env

    path = _write(tmp_path, "g", RUNSC_STRICT) if policy == "strict" else NETWORKED_GVISOR

    async def sample() -> str | None:
        try:
            with anyio.fail_after(180):  # a hang guard, not a timing claim
                envs = await Env.sample_init("gvisor", str(path), {})
        except SandboxError as e:
            return str(e)
        try:
            r = await envs["default"].exec(
                ["sh", "-c", "uname -r; grep Seccomp: /proc/self/status"]
            )
            assert r.stdout.split() == [GVISOR_KERNEL, "Seccomp:", "2"], r.stdout
            return None
        finally:
            await Env.sample_cleanup("gvisor", str(path), envs, False)

    refusal = anyio.run(sample)
    if refusal is not None:  # the sidecar's refusal does not name the policy file (yet)
        assert "\n" not in refusal and refusal.strip(), refusal
        print(f"{policy}: {refusal}")


@pytest.mark.docker
def test_an_inspect_sample_runs_under_gvisor_and_its_log_says_so(
    docker_client: Any, runsc_image: str, tmp_path: Path
) -> None:
    """A sample through Inspect, as a tier's are, with the one runsc policy that conforms here:
    the model's commands meet gVisor's kernel, only loopback, no capabilities and a read-only
    root, and the `.eval` log carries a passing conformance record for the runsc policy."""
    from _sandbox_helpers import evidence, run_containers, scripted_model, tool_outputs
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    from tierlock.sandbox._evidence import ConformanceRecord

    path = _write(tmp_path, "g", RUNSC_NO_OCI_SECCOMP)
    script = [
        "uname -r; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; "
        "grep CapEff /proc/self/status; awk '$2 == \"/\" {print $4}' /proc/mounts | cut -d, -f1"
    ]
    task = Task(
        dataset=[Sample(id="g", input="g")],
        solver=[use_tools(bash(timeout=30)), generate()],
        sandbox=("tierlock", str(path)),
    )
    logs = eval(
        task, model=scripted_model({"g": script}), log_dir=str(tmp_path / "logs"), display="none"
    )
    assert logs[0].status == "success", logs[0].error
    log = read_eval_log(logs[0].location)
    assert log.samples
    out = tool_outputs(log.samples[0])[0]
    assert out.split() == [GVISOR_KERNEL, "lo", "CapEff:", "0000000000000000", "ro"], out
    records = [e for e in evidence(log.samples[0]) if isinstance(e, ConformanceRecord)]
    assert records and all(r.ok for r in records), records
    assert run_containers(docker_client) == []
