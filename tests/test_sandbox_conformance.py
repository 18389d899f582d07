"""Conformance: translation in one place, read back and compared with the policy; a mismatch aborts
the sample before the model acts. Evidence: `docker diff` and cgroup readings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _sandbox_helpers import evidence, run_containers, scripted_model
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import bash

import tierlock.sandbox._provider as provider
from tierlock.sandbox import load_policy
from tierlock.sandbox._collect import changes_outside, upper_dir_diff
from tierlock.sandbox._conformance import check_config
from tierlock.sandbox._conformance_kernel import check_status, expected_capabilities
from tierlock.sandbox._evidence import ConformanceRecord
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import RUN_LABEL, run_id
from tierlock.sandbox._policy import Policy
from tierlock.sandbox._seccomp import default_profile_json
from tierlock.sandbox._translate import (
    IPC_SYSCTLS,
    KEEPALIVE_USER,
    container_settings,
    docker_settings,
    tmpfs_options,
)

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "tool-restricted.yaml"


def strict() -> Policy:
    return load_policy(POLICY)


# --- pure logic --------------------------------------------------------------------------------


def test_translation_applies_every_setting() -> None:
    p = strict()
    s = container_settings(p, image="img:1", labels={"tierlock.project": "tierlock"}, name="n")
    assert s["network_mode"] == "none" and s["read_only"] is True
    assert s["user"] == "1000:1000" and s["cap_drop"] == ["ALL"] and s["cap_add"] == []
    # tierlock's own seccomp profile (sandbox/seccomp/tierlock-default.json), not Docker's
    assert s["security_opt"] == ["no-new-privileges:true", f"seccomp={default_profile_json()}"]
    assert s["cgroupns"] == "private" and s["sysctls"] == IPC_SYSCTLS
    assert set(s["masked_paths"]) >= {"/proc/cmdline", "/proc/kcore", "/sys/firmware"}
    assert s["mem_limit"] == s["memswap_limit"] == 512 * 1024**2
    assert s["nano_cpus"] == 10**9 and s["pids_limit"] == 256 and s["init"] is True
    assert s["environment"] == {"LANG": "C.UTF-8", "HOME": "/workspace"}
    assert s["hostname"] == "sandbox" and s["ipc_mode"] == "none" and s["privileged"] is False
    assert s["tmpfs"]["/workspace"].startswith("size=64m,") and "uid=1000" in s["tmpfs"]["/workspace"]
    assert "mode=1777" in s["tmpfs"]["/tmp"]


def test_seccomp_profile_and_unconfined(tmp_path: Path) -> None:
    prof = tmp_path / "prof.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}')
    p = strict().model_copy(update={"process": strict().process.model_copy(update={"seccomp": "prof.json"})})
    opts = container_settings(p, image="i", labels={}, policy_dir=tmp_path)["security_opt"]
    assert opts[1] == 'seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}'
    u = strict().model_copy(update={"process": strict().process.model_copy(update={"seccomp": "unconfined"})})
    assert "seccomp=unconfined" in container_settings(u, image="i", labels={})["security_opt"]


def test_docker_settings_for_policy_show() -> None:
    s = docker_settings(strict())
    assert s["image"].startswith("tierlock-base:") and s["labels"]["tierlock.run"] == "<run>"
    assert "name" not in s
    # PID 1 (the keepalive) and the model's commands run as different users
    assert (s["user"], s["exec_user"]) == (KEEPALIVE_USER, "1000:1000")


def _attrs_from_settings(s: dict[str, Any], image_env: list[str]) -> dict[str, Any]:
    """What Docker reports for a container created with these settings (for pure-logic tests)."""
    env = dict(e.split("=", 1) for e in image_env) | s["environment"]
    return {
        "Image": "sha256:x",
        "Config": {"User": s["user"], "WorkingDir": s["working_dir"], "Hostname": s["hostname"],
                   "Env": [f"{k}={v}" for k, v in env.items()]},
        "HostConfig": {"Privileged": s["privileged"], "ReadonlyRootfs": s["read_only"],
                       "Init": s["init"], "Runtime": s["runtime"], "CapDrop": s["cap_drop"],
                       "CapAdd": s["cap_add"] or None, "SecurityOpt": s["security_opt"],
                       "Memory": s["mem_limit"], "MemorySwap": s["memswap_limit"],
                       "NanoCpus": s["nano_cpus"], "PidsLimit": s["pids_limit"],
                       "NetworkMode": s["network_mode"], "IpcMode": s["ipc_mode"], "PidMode": "",
                       "UTSMode": "", "UsernsMode": "", "Tmpfs": s["tmpfs"], "Mounts": None,
                       "MaskedPaths": s["masked_paths"], "Sysctls": s["sysctls"],
                       "CgroupnsMode": s["cgroupns"],
                       "ReadonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
                                         "/proc/bus"]},
        "Mounts": [],
    }


def test_check_config_catches_each_weakened_setting() -> None:
    p = strict()
    image_env = ["PATH=/usr/bin:/bin"]
    good = container_settings(p, image="i", labels={})
    assert check_config(_attrs_from_settings(good, image_env), p, image_env=image_env) == []
    weakened = {
        "read_only": False, "cap_drop": [], "cap_add": ["SYS_ADMIN"], "security_opt": [],
        "mem_limit": None, "pids_limit": None, "network_mode": "bridge", "user": "0:0",
        "privileged": True, "init": False, "nano_cpus": None, "ipc_mode": "private",
        "tmpfs": {"/workspace": "size=1g"}, "environment": {**good["environment"], "API_KEY": "x"},
        "masked_paths": ["/proc/kcore"], "sysctls": None, "cgroupns": "host",
    }
    for key, value in weakened.items():
        attrs = _attrs_from_settings({**good, key: value}, image_env)
        assert check_config(attrs, p, image_env=image_env), f"{key}={value!r} not caught"


def test_sandbox_pid1_runs_as_the_keepalive_user_not_the_policys() -> None:
    p = strict()
    image_env = ["PATH=/usr/bin:/bin"]
    box = container_settings(p, image="i", labels={}, sandbox=True)
    assert box["user"] == KEEPALIVE_USER and box["tmpfs"] == tmpfs_options(p)  # owned by 1000
    attrs = _attrs_from_settings(box, image_env)
    assert check_config(attrs, p, image_env=image_env, sandbox=True) == []
    # a sandbox whose PID 1 runs as the model's user (which could kill it) is refused
    as_model = _attrs_from_settings({**box, "user": p.process.user}, image_env)
    assert any("Config.User" in m for m in check_config(as_model, p, image_env=image_env,
                                                        sandbox=True))
    # and so is a policy whose user is the keepalive's own
    same = p.model_copy(update={"process": p.process.model_copy(update={"user": KEEPALIVE_USER})})
    assert any("keepalive" in m for m in check_config(attrs, same, image_env=image_env,
                                                      sandbox=True))


def test_check_status_reads_kernel_view() -> None:
    p = strict()
    ok = "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n" \
         "CapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    assert check_status(ok, p, ["lo"]) == []
    assert check_status(ok.replace("CapBnd:\t0000000000000000", "CapBnd:\t00000000a80425fb"), p, ["lo"])
    assert check_status(ok.replace("Seccomp:\t2", "Seccomp:\t0"), p, ["lo"])
    assert check_status(ok, p, ["eth0", "lo"])
    assert expected_capabilities(p) == frozenset()


def test_changes_outside_writable_filters_docker_artifacts() -> None:
    diff = [{"Path": "/usr", "Kind": 0}, {"Path": "/usr/sbin", "Kind": 0},
            {"Path": "/usr/sbin/docker-init", "Kind": 1}, {"Path": "/workspace/x", "Kind": 1}]
    assert changes_outside(diff, ["/workspace"]) == []
    diff.append({"Path": "/usr/sbin/implant", "Kind": 1})
    assert [c.path for c in changes_outside(diff, ["/workspace"])] == [
        "/usr", "/usr/sbin", "/usr/sbin/implant"]


def test_tmpfs_for_named_user() -> None:
    p = strict().model_copy(update={"process": strict().process.model_copy(update={"user": "nobodyx"})})
    assert "mode=1777" in tmpfs_options(p)["/workspace"]


# --- real daemon ---------------------------------------------------------------------------------


@pytest.mark.docker
def test_upper_dir_diff_matches_docker_diff(docker_client: Any) -> None:
    image = ensure_image(docker_client)
    c = docker_client.containers.run(image, ["sleep", "60"], detach=True, user="0",
                                     labels={"tierlock.project": "tierlock", RUN_LABEL: run_id()})
    try:
        c.exec_run(["sh", "-c", "echo x > /etc/newfile; rm /etc/issue; mkdir -p /opt/a/b; "
                                "touch /opt/a/b/c; echo >> /etc/passwd"])
        c.reload()
        fast = upper_dir_diff(c.attrs)
        if fast is None:
            pytest.skip("the overlay upper directory is not visible from this host")
        slow = docker_client.api.diff(c.id)
        assert sorted((d["Path"], d["Kind"]) for d in fast) == sorted(
            (d["Path"], d["Kind"]) for d in slow)
    finally:
        c.remove(force=True)


@pytest.mark.docker
def test_mismatch_aborts_sample_before_model_acts(docker_client: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A translation that silently drops the read-only root and the capability drop is caught by
    the read-back: the sample errors, the model is never called, and nothing is left running."""
    ensure_image(docker_client)
    real = provider.container_settings

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real(*args, **kwargs), "read_only": False, "cap_drop": []}

    monkeypatch.setattr(provider, "container_settings", broken)
    calls: list[str] = []
    task = Task(dataset=[Sample(id="s", input="contain")],
                solver=[use_tools(bash()), generate()], sandbox=("tierlock", str(POLICY)))
    logs = eval(task, model=scripted_model({"contain": ["id"]}, calls), log_dir=str(tmp_path),
                display="none")
    log = read_eval_log(logs[0].location)
    assert log.samples
    sample = log.samples[0]
    assert sample.error is not None and "does not conform" in sample.error.message
    assert "ReadonlyRootfs" in sample.error.message
    assert calls == []
    (record,) = [r for r in evidence(sample) if isinstance(r, ConformanceRecord)]
    assert not record.ok and any("CapDrop" in m for m in record.mismatches)
    assert run_containers(docker_client) == []
