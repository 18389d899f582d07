"""tierlock's seccomp profile: the shipped file is exactly what `build_profile` makes, and it
refuses what no tier needs (checked against the real kernel by `tierlock selftest`)."""

from __future__ import annotations

import json

from tierlock.sandbox._seccomp import (
    ALLOWED,
    PROFILE_FILE,
    build_profile,
    default_profile_sha256,
    profile_text,
    render_profile,
)


def test_shipped_profile_is_the_generated_one() -> None:
    assert profile_text() == render_profile(), (
        f"regenerate {PROFILE_FILE}: python sandbox/_seccomp.py > sandbox/{PROFILE_FILE}"
    )
    assert len(default_profile_sha256()) == 64


def test_profile_refuses_what_no_tier_needs() -> None:
    p = build_profile()
    assert p["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {
        n
        for r in p["syscalls"]
        if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
        for n in r["names"]
    }
    for name in (
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "ptrace",
        "bpf",
        "process_vm_readv",
        "process_vm_writev",
        "userfaultfd",
        "unshare",
        "setns",
        "mount",
        "keyctl",
        "perf_event_open",
        "kexec_load",
        "init_module",
        "socket",
        "clone",
        "personality",
        "socketcall",
        "ipc",
    ):
        assert name not in allowed, name
    families = sorted(r["args"][0]["value"] for r in p["syscalls"] if r["names"] == ["socket"])
    assert families == [1, 2, 10, 16]  # unix, inet, inet6, netlink: no vsock (40), no packet (17)
    assert len(set(ALLOWED)) == len(ALLOWED)
    json.dumps(p)
