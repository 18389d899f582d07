"""Effective limits read back from the kernel: a sandbox whose cgroup or tmpfs limits are looser
than its policy is refused, whatever `docker inspect` says."""

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
import tierlock.sandbox._sample_conform as sample_conform
from tierlock.sandbox import load_policy
from tierlock.sandbox._docker import create_container
from tierlock.sandbox._effective import (
    MOUNTINFO,
    STATUS,
    V1_CPU_PERIOD,
    V1_CPU_QUOTA,
    V1_MEMORY,
    V1_MEMSW,
    V1_PIDS,
    V2_CPU,
    V2_MEMORY,
    V2_PIDS,
    V2_SWAP,
    check_effective,
    parse_mountinfo,
    parse_probe,
    tmpfs_bytes,
)
from tierlock.sandbox._evidence import ConformanceRecord
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import object_labels
from tierlock.sandbox._policy import Policy
from tierlock.sandbox._translate import container_settings

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "tool-restricted.yaml"

MOUNTS_OK = (
    "72 48 0:40 / / ro,noatime master:2 - fuse.fuse-overlayfs fuse-overlayfs rw,user_id=0\n"
    "74 72 0:43 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755\n"
    "88 72 0:47 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=65536k,mode=1777\n"
    "89 72 0:48 / /workspace rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=65536k,uid=1000\n"
)
V1_OK = {V1_MEMORY: "536870912", V1_MEMSW: "536870912", V1_PIDS: "256",
         V1_CPU_QUOTA: "100000", V1_CPU_PERIOD: "100000", MOUNTINFO: MOUNTS_OK}  # fmt: skip
V2_OK = {V2_MEMORY: "536870912", V2_SWAP: "0", V2_PIDS: "256", V2_CPU: "100000 100000",
         MOUNTINFO: MOUNTS_OK}  # fmt: skip


def strict() -> Policy:
    return load_policy(POLICY)


# --- pure logic --------------------------------------------------------------------------------


def test_conforming_v1_and_v2_readings_pass() -> None:
    assert check_effective(V1_OK, strict()) == []
    assert check_effective(V2_OK, strict()) == []
    # tighter than the policy is fine (the kernel rounds down; a parent cgroup may be tighter)
    assert check_effective({**V1_OK, V1_MEMORY: "536866816", V1_PIDS: "100"}, strict()) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({V1_MEMORY: "9223372036854771712"}, "no memory limit"),
        ({V1_MEMORY: "1073741824"}, "memory limit is 1g, looser than policy limits.memory 512m"),
        ({V1_MEMSW: "9223372036854771712"}, "no memory+swap limit"),
        ({V1_PIDS: "max"}, "no pids limit"),
        ({V1_PIDS: "1000"}, "pids limit is 1000, looser than policy limits.pids 256"),
        ({V1_CPU_QUOTA: "-1"}, "no CPU quota"),
        ({V1_CPU_QUOTA: "200000"}, "CPU quota is 2 CPUs, looser than policy limits.cpus 1"),
        ({V1_MEMORY: None}, "cannot read the effective memory limit"),
        ({V1_PIDS: None}, "cannot read the effective pids limit"),
        ({V1_CPU_QUOTA: None}, "cannot read the effective CPU quota"),
        ({MOUNTINFO: None}, "cannot read the mount table"),
    ],
)
def test_each_looser_or_missing_v1_limit_is_a_mismatch(change: dict[str, Any], words: str) -> None:
    files = {k: v for k, v in {**V1_OK, **change}.items() if v is not None}
    bad = check_effective(files, strict())
    assert len(bad) == 1 and words in bad[0], bad


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({V2_MEMORY: "max"}, "no memory limit"),
        ({V2_SWAP: "max"}, "no swap limit"),
        ({V2_SWAP: "1048576"}, "swap limit is 1m, looser than policy limits.memory (no swap) 0"),
        ({V2_PIDS: "max"}, "no pids limit"),
        ({V2_CPU: "max 100000"}, "no CPU quota"),
        ({V2_CPU: "150000 100000"}, "CPU quota is 1.5 CPUs"),
    ],
)
def test_each_looser_v2_limit_is_a_mismatch(change: dict[str, str], words: str) -> None:
    bad = check_effective({**V2_OK, **change}, strict())
    assert len(bad) == 1 and words in bad[0], bad


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("89 72 0:48 / /workspace rw - tmpfs tmpfs rw,size=0k,uid=1000", "uncapped (size=0)"),
        ("89 72 0:48 / /workspace rw - tmpfs tmpfs rw,uid=1000", "no size cap"),
        ("89 72 0:48 / /workspace rw - tmpfs tmpfs rw,size=131072k", "is 128m, larger than"),
        ("89 72 254:0 /x /workspace rw - ext4 /dev/vda rw", "is a ext4 mount"),
    ],
)
def test_each_looser_tmpfs_is_a_mismatch(line: str, words: str) -> None:
    mounts = "\n".join(m for m in MOUNTS_OK.splitlines() if " /workspace " not in m)
    bad = check_effective({**V1_OK, MOUNTINFO: f"{mounts}\n{line}"}, strict())
    assert len(bad) == 1 and words in bad[0] and "/workspace" in bad[0], bad
    bad = check_effective({**V1_OK, MOUNTINFO: mounts}, strict())
    assert bad == ["/workspace is not mounted, policy filesystem.writable wants a 64m tmpfs"]


def test_a_later_mount_on_the_same_point_hides_the_earlier_one() -> None:
    loose = MOUNTS_OK + "95 89 0:50 / /workspace rw - tmpfs tmpfs rw\n"
    assert any("no size cap" in m for m in check_effective({**V1_OK, MOUNTINFO: loose}, strict()))


def test_zero_limits_are_never_satisfied() -> None:
    """`memory: 0` / `size: 0` mean "no limit" to Docker: the read-back refuses them."""
    p = strict()
    zero = p.model_copy(update={"limits": p.limits.model_copy(update={"memory": 0})})
    assert any("looser than policy limits.memory 0" in m for m in check_effective(V1_OK, zero))


def test_mountinfo_escapes_and_probe_framing() -> None:
    (m,) = parse_mountinfo("1 2 0:1 / /a\\040b rw,nosuid - tmpfs tmpfs rw,size=16k")
    assert (m.point, m.fstype, m.super_options["size"]) == ("/a b", "tmpfs", "16k")
    assert tmpfs_bytes("16384k") == 16 << 20 and tmpfs_bytes("x") is None
    text = (
        f"{STATUS}:Uid:\t1\n{MOUNTINFO}:1 2 0:1 / /a rw - tmpfs tmpfs rw\n{V1_PIDS}:32\n"
        f"/etc/passwd:root:x:0:0\n{STATUS}:Gid:\t1\n"
    )
    # only the probe's own files count; everything after the first colon is the line
    assert parse_probe(text) == {
        STATUS: "Uid:\t1\nGid:\t1",
        V1_PIDS: "32",
        MOUNTINFO: "1 2 0:1 / /a rw - tmpfs tmpfs rw",
    }


# --- real daemon ---------------------------------------------------------------------------------


def _loose_container(client: Any, p: Policy, **loose: Any) -> Any:
    settings = container_settings(
        p, image=ensure_image(client), labels=object_labels(role="test"), sandbox=True
    )
    return create_container(client, {**settings, **loose})


@pytest.mark.docker
def test_kernel_check_refuses_a_container_looser_than_its_policy(docker_client: Any) -> None:
    """Created with no memory limit, no pids limit, no CPU quota, an uncapped and an oversized
    tmpfs: the kernel's read-back names each one. The same policy's own container passes."""
    p = strict()
    c = _loose_container(docker_client, p)
    try:
        c.start()
        assert sample_conform.kernel_check(docker_client, c.id, p) == []
    finally:
        c.remove(force=True)
    tmpfs = {"/workspace": "size=0,nosuid,nodev,mode=1777", "/tmp": "size=128m,nosuid,nodev"}
    c = _loose_container(
        docker_client,
        p,
        mem_limit=None,
        memswap_limit=None,
        pids_limit=None,
        nano_cpus=None,
        tmpfs=tmpfs,
    )
    try:
        c.start()
        bad = sample_conform.kernel_check(docker_client, c.id, p)
    finally:
        c.remove(force=True)
    text = "\n".join(bad)
    assert all(m.startswith("limits: ") for m in bad), bad
    for words in (
        "no memory limit",
        "no pids limit",
        "no CPU quota",
        "tmpfs /workspace is uncapped (size=0)",
        "tmpfs /tmp is 128m, larger than policy filesystem.writable 64m",
    ):
        assert words in text, text


@pytest.mark.docker
def test_a_looser_sandbox_is_refused_before_the_model_acts(
    docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the inspect read-back is fooled (here: switched off), a sandbox created with a
    larger memory limit and an uncapped tmpfs never runs the model's first command."""
    ensure_image(docker_client)
    real = provider.container_settings

    def looser(*args: Any, **kwargs: Any) -> dict[str, Any]:
        s = real(*args, **kwargs)
        return {
            **s,
            "mem_limit": "1g",
            "memswap_limit": "1g",
            "tmpfs": {**s["tmpfs"], "/tmp": "size=0,nosuid,nodev,mode=1777"},
        }

    monkeypatch.setattr(provider, "container_settings", looser)
    monkeypatch.setattr(sample_conform, "check_config", lambda *a, **k: [])
    calls: list[str] = []
    task = Task(
        dataset=[Sample(id="s", input="contain")],
        solver=[use_tools(bash()), generate()],
        sandbox=("tierlock", str(POLICY)),
    )
    logs = eval(
        task,
        model=scripted_model({"contain": ["id"]}, calls),
        log_dir=str(tmp_path),
        display="none",
    )
    sample = read_eval_log(logs[0].location).samples[0]  # type: ignore[index]
    assert sample.error is not None and "does not conform" in sample.error.message
    assert calls == []
    (record,) = [r for r in evidence(sample) if isinstance(r, ConformanceRecord)]
    assert not record.ok
    assert any(
        "memory limit is 1g, looser than policy limits.memory 512m" in m for m in record.mismatches
    ), record.mismatches
    assert any("tmpfs /tmp is uncapped" in m for m in record.mismatches), record.mismatches
    assert run_containers(docker_client) == []
