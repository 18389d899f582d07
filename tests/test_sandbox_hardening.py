"""Adversarial review of the containment core: what the model inside a container (or a slightly
wrong policy) could do to the host side, to the evidence, or past the checks."""

from __future__ import annotations

import io
import re
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tierlock.sandbox import load_policy
from tierlock.sandbox._collect import (
    MAX_DIFF_ENTRIES,
    TRUNCATED_PATH,
    changes_outside,
    upper_dir_diff,
)
from tierlock.sandbox._conformance import check_config, check_daemon
from tierlock.sandbox._conformance_kernel import check_status
from tierlock.sandbox._docker import create_container
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import object_labels
from tierlock.sandbox._lint import is_root_user, lint_policy
from tierlock.sandbox._policy import Policy
from tierlock.sandbox._sample_conform import kernel_check
from tierlock.sandbox._translate import container_settings, user_ids

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "tool-restricted.yaml"


def strict(**process: Any) -> Policy:
    p = load_policy(POLICY)
    return p.model_copy(update={"process": p.process.model_copy(update=process)}) if process else p


def _root_container(client: Any, **kw: Any) -> Any:
    """A root, writable-root container (what `unsafe` downgrades allow) for evidence tests."""
    return client.containers.run(ensure_image(client), ["sleep", "300"], detach=True, user="0",
                                 network_mode="none", labels=object_labels(role="test"), **kw)


def _put(container: Any, path: str, name: str, text: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    container.put_archive(path, buf.getvalue())


# Atomically exchanges a directory and a symlink (renameat2 RENAME_EXCHANGE), forever.
_SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
while libc.syscall(316, -100, b"d", -100, b"link", 2) == 0:
    pass
"""


# --- the host never follows a container-made symlink in the overlay upper directory ---------------


@pytest.mark.docker
def test_upper_dir_walk_never_follows_container_symlinks(docker_client: Any, tmp_path: Path) -> None:
    """The container swaps a directory with a symlink to a host directory while the host walks
    the upper directory: the host's files must never show up (nor be walked)."""
    marker = f"HOST_ONLY_{uuid.uuid4().hex}"
    (tmp_path / marker).write_text("host secret")
    c = _root_container(docker_client)
    try:
        _put(c, "/opt", "swap.py", _SWAPPER)
        for k in range(4):
            c.exec_run(["sh", "-c", f"mkdir -p /opt/{k}/d/sub && ln -s {tmp_path} /opt/{k}/link"])
            c.exec_run(["python3", "/opt/swap.py", f"/opt/{k}"], detach=True)
        c.reload()
        seen: list[str] = []
        walks = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen:
            walks += 1
            try:
                diff = upper_dir_diff(c.attrs) or []
            except OSError:  # a vanishing entry may end a walk; it must never leak
                continue
            seen = [d["Path"] for d in diff if marker in d["Path"]]
        if walks < 20:
            pytest.skip("too few walks to say anything")
        assert seen == [], f"host directory listed through a container symlink after {walks} walks"
    finally:
        c.remove(force=True)


@pytest.mark.docker
def test_diff_is_bounded_and_truncation_is_flagged(docker_client: Any) -> None:
    """Millions of files cannot exhaust the host: the walk stops at its limit and says so, and
    the truncation itself counts as a change outside the writable paths."""
    c = _root_container(docker_client)
    try:
        c.exec_run(["sh", "-c", "mkdir -p /opt/many && cd /opt/many && "
                                "for i in $(seq 300); do : > f$i; done"])
        c.reload()
        diff = upper_dir_diff(c.attrs, limit=100)
        if diff is None:
            pytest.skip("the overlay upper directory is not visible from this host")
        assert len(diff) == 101
        assert diff[-1]["Path"] == TRUNCATED_PATH.format(n=100) or any(
            d["Path"] == TRUNCATED_PATH.format(n=100) for d in diff)
        assert any(ch.path == TRUNCATED_PATH.format(n=100) for ch in changes_outside(diff, ["/tmp"]))
        assert MAX_DIFF_ENTRIES >= 10_000
    finally:
        c.remove(force=True)


def test_changes_outside_is_not_quadratic() -> None:
    """A wide diff of changed directories is filtered in near-linear time (no pairwise scan)."""
    diff = [{"Path": f"/d{i}", "Kind": 0} for i in range(20_000)]
    diff += [{"Path": f"/d{i}/f", "Kind": 1} for i in range(20_000)]
    start = time.process_time()
    out = changes_outside(diff, [])
    assert len(out) == 40_000
    assert time.process_time() - start < 5  # a pairwise scan takes minutes here


# --- users that are root under another spelling ----------------------------------------------------


@pytest.mark.parametrize("user", ["+0", "-0", "00", "+0:+0", "+0:1000", "root:agent", "0:1000"])
def test_root_spellings_are_root(user: str) -> None:
    """Docker parses uids with Go's strconv.Atoi, which accepts a sign: `+0` is root."""
    assert is_root_user(user)
    assert user_ids(user) is not None and user_ids(user)[0] == 0  # type: ignore[index]
    problems = lint_policy(strict(user=user))
    assert any(p.rule == "root-user" and p.severity == "error" for p in problems)


def test_non_ascii_digits_are_not_uids() -> None:
    """Go's Atoi only reads ASCII digits: `١٠٠٠` is a user name to Docker, not uid 1000."""
    assert user_ids("\u0661\u0660\u0660\u0660") is None
    assert user_ids("+1000:+1000") == (1000, 1000)


def test_kernel_check_refuses_root_for_a_non_root_policy_user() -> None:
    """A named user that the image maps to uid 0 is caught by the kernel view."""
    status = ("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\n"
              "CapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n")
    assert any("uid" in m for m in check_status(status, strict(user="toor"), ["lo"]))


@pytest.mark.docker
def test_plus_zero_user_is_root_on_the_real_daemon(docker_client: Any) -> None:
    """Docker really runs `+0` as uid 0: lint must refuse it, and the kernel check must read the
    policy as root (not skip the uid comparison as an unknown name)."""
    p = strict(user="+0")
    assert any(x.rule == "root-user" and x.severity == "error" for x in lint_policy(p))
    settings = container_settings(p, image=ensure_image(docker_client),
                                  labels=object_labels(role="test"), sandbox=True)
    c = create_container(docker_client, settings)
    try:
        c.start()
        assert c.exec_run(["id", "-u"], user=p.process.user).output.strip() == b"0"
        assert kernel_check(docker_client, c.id, p) == []  # conforms: the policy says root
    finally:
        c.remove(force=True)
    # a container whose PID 1 runs as the policy's root (not the keepalive user) is refused
    c = create_container(docker_client, {**settings, "user": p.process.user})
    try:
        c.start()
        assert any(m.startswith("PID 1:") and "uid" in m
                   for m in kernel_check(docker_client, c.id, p))
    finally:
        c.remove(force=True)


# --- conformance reads back settings the policy never grants ---------------------------------------


def _good_attrs(docker_client: Any, p: Policy, **extra: Any) -> dict[str, Any]:
    settings = container_settings(p, image=ensure_image(docker_client),
                                  labels=object_labels(role="test"))
    c = create_container(docker_client, {**settings, **extra})
    try:
        return docker_client.api.inspect_container(c.id)  # type: ignore[no-any-return]
    finally:
        c.remove(force=True)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("extra", "what"),
    [
        ({"security_opt": ["no-new-privileges:true", "label=disable"]}, "SecurityOpt"),
        ({"sysctls": {"net.ipv4.ping_group_range": "0 2147483647"}}, "Sysctls"),
        ({"group_add": ["0"]}, "GroupAdd"),
        ({"device_cgroup_rules": ["c 1:3 rwm"]}, "DeviceCgroupRules"),
        ({"oom_kill_disable": True}, "OomKillDisable"),
        ({"oom_score_adj": -500}, "OomScoreAdj"),
        ({"extra_hosts": {"metadata": "169.254.169.254"}}, "ExtraHosts"),
        ({"dns": ["10.0.0.1"]}, "Dns"),
        ({"tmpfs": {"/workspace": "size=64m,exec,mode=0755,uid=1000,gid=1000",
                    "/tmp": "size=64m,exec,nosuid,nodev,mode=1777"}}, "Tmpfs"),
        ({"tmpfs": {"/workspace": "size=64m,nosuid,nodev,suid,dev,uid=1000",
                    "/tmp": "size=64m,exec,nosuid,nodev,mode=1777"}}, "Tmpfs"),
        ({"cgroup_parent": "/elsewhere"}, "CgroupParent"),
        ({"ulimits": []}, None),
    ],
)
def test_check_config_reads_back_what_the_policy_never_grants(
    docker_client: Any, extra: dict[str, Any], what: str | None
) -> None:
    p = strict()
    image_env = docker_client.api.inspect_image(ensure_image(docker_client))["Config"]["Env"]
    attrs = _good_attrs(docker_client, p, **extra)
    bad = check_config(attrs, p, image_env=image_env)
    if what is None:
        assert bad == []
    else:
        assert any(what in m for m in bad), bad


@pytest.mark.docker
def test_check_config_wants_docker_masked_paths(docker_client: Any) -> None:
    """`--security-opt systempaths=unconfined` (a CLI spelling of empty MaskedPaths and
    ReadonlyPaths) unmasks /proc/kcore, /proc/keys, /proc/sys...: read back and refused."""
    p = strict()
    image_env = docker_client.api.inspect_image(ensure_image(docker_client))["Config"]["Env"]
    attrs = _good_attrs(docker_client, p)
    assert check_config(attrs, p, image_env=image_env) == []
    for key in ("MaskedPaths", "ReadonlyPaths"):
        unmasked = {**attrs, "HostConfig": {**attrs["HostConfig"], key: []}}
        assert any(key in m for m in check_config(unmasked, p, image_env=image_env))


# --- image build locks in a shared temporary directory ----------------------------------------------


def test_build_lock_never_follows_a_planted_symlink(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock file another user planted as a symlink is never opened (root would truncate its
    target), and a lock directory others can write to is refused."""
    import os

    from tierlock.sandbox._errors import SandboxError
    from tierlock.sandbox._images import BASE_RECIPE, _build_lock

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    locks = tmp_path / "tierlock-locks"
    locks.mkdir(mode=0o700)
    lock = locks / f"image-{BASE_RECIPE.name}-{BASE_RECIPE.digest()[:12]}.lock"
    lock.symlink_to(victim)
    with pytest.raises(OSError), _build_lock(BASE_RECIPE):
        pass
    assert victim.read_text() == "precious"
    lock.unlink()
    with _build_lock(BASE_RECIPE):
        assert lock.is_file() and not lock.is_symlink()
    os.chmod(locks, 0o777)
    with pytest.raises(SandboxError), _build_lock(BASE_RECIPE):
        pass


# --- the daemon's default seccomp profile -----------------------------------------------------------


def test_daemon_seccomp_profile_must_be_dockers_own() -> None:
    p = strict()
    assert check_daemon(["name=seccomp,profile=default"], p) == []
    assert check_daemon(["name=apparmor", "name=seccomp,profile=builtin"], p) == []
    assert check_daemon(["name=seccomp,profile=/etc/docker/allow-all.json"], p)
    assert check_daemon(["name=apparmor"], p)
    assert check_daemon(["name=seccomp,profile=/x.json"], strict(seccomp="unconfined")) == []


@pytest.mark.docker
def test_this_daemon_uses_dockers_seccomp_profile(docker_client: Any) -> None:
    assert check_daemon(docker_client.info().get("SecurityOptions"), strict()) == []


def test_lint_reads_capability_look_alikes_as_docker_does() -> None:
    """Docker upper-cases capability names like Python (`ſys_admin` → SYS_ADMIN: bit 21 on this
    daemon), so lint sees the same capability and refuses it."""
    caps = strict().process.capabilities.model_copy(update={"add": ["cap_\u017fys_admin"]})
    p = strict().model_copy(update={"process": strict().process.model_copy(
        update={"capabilities": caps})})
    assert any(x.rule == "dangerous-capability" and x.severity == "error"
               for x in lint_policy(p))


# --- an `unsafe` downgrade is on the record, and evidence still works under it ----------------------


@pytest.mark.docker
def test_unsafe_downgrade_is_recorded_with_the_sample(docker_client: Any, tmp_path: Path) -> None:
    from _sandbox_helpers import evidence, run_containers, scripted_model
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    from tierlock.sandbox._evidence import ConformanceRecord, ContainerEvidence

    ensure_image(docker_client)
    reason = "the task installs files under /opt as part of what it measures"
    policy = tmp_path / "unsafe.yaml"
    policy.write_text(f"extends: {POLICY}\nname: unsafe-root\nfilesystem:\n  read_only_root: false\n"
                      f"unsafe:\n  allow: [writable-root]\n  reason: {reason}\n")
    task = Task(dataset=[Sample(id="u", input="u")], solver=[use_tools(bash()), generate()],
                sandbox=("tierlock", str(policy)))
    logs = eval(task, model=scripted_model({"u": ["touch /opt/x 2>&1; mkdir -p /var/tmp/y && "
                                                  "touch /var/tmp/y/z && echo ok"]}),
                log_dir=str(tmp_path / "logs"), display="none")
    sample = read_eval_log(logs[0].location).samples[0]  # type: ignore[index]
    records = evidence(sample)
    (conf,) = [r for r in records if isinstance(r, ConformanceRecord)]
    assert conf.ok and conf.unsafe_reason == reason and conf.unsafe_rules == ["writable-root"]
    (cont,) = [r for r in records if isinstance(r, ContainerEvidence)]
    assert "/var/tmp/y/z" in [c.path for c in cont.changes_outside_writable]
    assert run_containers(docker_client) == []


# --- the model cannot stop its own container (PID 1 runs as the keepalive user) --------------------


KILLS = ["kill -9 -1", "kill -9 1", "pkill sleep", "pkill -9 -f .", "kill -9 $(pgrep -x sleep)"]
"""What a model might run to stop its own container (and take the cgroup evidence with it)."""


@pytest.mark.docker
def test_model_cannot_erase_pids_evidence_by_stopping_the_container(docker_client: Any) -> None:
    """The keepalive (PID 1) runs as a uid the policy's user cannot signal: after a fork bomb and
    every kill the model's user can try, the container still runs and pids.events is readable."""
    from tierlock.sandbox._collect import collect_evidence
    from tierlock.sandbox._translate import KEEPALIVE_USER

    p = strict()
    settings = container_settings(p, image=ensure_image(docker_client),
                                  labels=object_labels(role="test"), sandbox=True)
    assert settings["user"] == KEEPALIVE_USER != p.process.user
    c = create_container(docker_client, settings)
    try:
        c.start()
        assert kernel_check(docker_client, c.id, p) == []
        c.exec_run(["bash", "-c", "for i in $(seq 300); do sleep 2 & done 2>/dev/null; wait"],
                   user=p.process.user)
        for cmd in KILLS:
            c.exec_run(["sh", "-c", cmd], user=p.process.user)
        time.sleep(1)
        c.reload()
        assert c.status == "running"
        assert c.exec_run(["id", "-u"], user=p.process.user).output.strip() == b"1000"
        ev = collect_evidence(docker_client, c.id, role="default", policy_hash="x",
                              writable=["/tmp", "/workspace"])
        assert ev.running and ev.pids_limit_hit
    finally:
        c.remove(force=True)


@pytest.mark.docker
def test_model_kills_through_inspect_leave_the_container_and_its_evidence(
    docker_client: Any, tmp_path: Path
) -> None:
    """The same through Inspect's bash tool and the provider: the sandbox survives the model's
    fork bomb and kills, later commands still run as the policy's user, and the transcript's
    evidence says the pids limit was hit in a running container."""
    from _sandbox_helpers import evidence, scripted_model, tool_outputs
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    from tierlock.sandbox._evidence import ContainerEvidence

    ensure_image(docker_client)
    scripts = {"killer": [
        "for i in $(seq 300); do sleep 3 & done 2>/dev/null; echo FORKED",
        *[f"{cmd}; echo RC=$?" for cmd in KILLS],
        "echo UID=$(id -u) PID1=$(stat -c %u /proc/1)",
    ]}
    task = Task(dataset=[Sample(id="killer", input="killer")],
                solver=[use_tools(bash(timeout=20)), generate()], sandbox=("tierlock", str(POLICY)))
    (log,) = eval(task, model=scripted_model(scripts), log_dir=str(tmp_path), display="none")
    assert log.status == "success", log.error
    assert log.samples is not None
    (sample,) = log.samples
    assert sample.error is None
    outputs = tool_outputs(sample)
    # the policy's user 1000, or the uid leased to this sandbox when others hold 1000's slot
    found = re.search(r"UID=(\d+) PID1=65534", outputs[-1])
    assert found and 1000 <= int(found.group(1)) < 65534, outputs[-1]
    ev = [e for e in evidence(sample) if isinstance(e, ContainerEvidence)]
    assert len(ev) == 1
    assert ev[0].running and ev[0].pids_limit_hit


# --- nothing of the host's Docker client configuration enters a sandbox ------------------------------


@pytest.mark.docker
def test_docker_client_proxy_config_never_enters_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-py copies `proxies` from ~/.docker/config.json (credentials included) into every
    container it creates unless told not to."""
    import json

    import docker

    (tmp_path / "config.json").write_text(json.dumps({"proxies": {"default": {
        "httpProxy": "http://user:CANARY-PASS@proxy.corp:3128", "noProxy": "localhost"}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = docker.from_env()
    p = strict()
    image = ensure_image(client)
    c = create_container(client, container_settings(p, image=image,
                                                      labels=object_labels(role="test")))
    try:
        attrs = client.api.inspect_container(c.id)
        assert not [e for e in attrs["Config"]["Env"] if "CANARY-PASS" in e]
        image_env = client.api.inspect_image(image)["Config"]["Env"]
        assert check_config(attrs, p, image_env=image_env) == []
    finally:
        c.remove(force=True)
        client.close()
