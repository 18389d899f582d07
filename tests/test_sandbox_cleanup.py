"""Cleanup of leftovers: owner labels tell dead runs from live ones; a run killed with SIGKILL
mid-sample leaves its container, and cleanup (CLI, or the next start) leaves nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tierlock.sandbox._cleanup import _selected
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import (
    OWNER_LABEL,
    PROJECT_LABEL,
    RUN_LABEL,
    _boot_id,
    object_labels,
    owner,
    owner_alive,
)
from tierlock.sandbox._provider import TierlockSandboxEnvironment

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "policies" / "tool-restricted.yaml")


def test_owner_alive() -> None:
    me = owner()
    assert owner_alive(me) is True
    host, boot, pid, start = me.split("/")
    assert owner_alive(f"{host}/{boot}/{pid}/{int(start) + 12345}") is False  # pid reused
    assert owner_alive(f"{host}/not-this-boot/{pid}/{start}") is False
    assert owner_alive(f"{host}/{boot}/999999999/1") is False
    assert owner_alive(f"another-host/{boot}/{pid}/{start}") is None
    assert owner_alive("garbage") is None


def test_selection_rules() -> None:
    dead = {OWNER_LABEL: f"{socket.gethostname()}/{_boot_id()}/999999999/1", RUN_LABEL: "r1"}
    live = object_labels(role="default")
    assert _selected(dead, run=None, include_live=False) is True
    assert _selected(live, run=None, include_live=False) is False
    assert _selected({}, run=None, include_live=False) is None  # unknown owner: not ours to judge
    assert _selected(live, run=None, include_live=True) is True
    assert _selected(dead, run="r1", include_live=False) is True
    assert _selected(live, run="r1", include_live=False) is None


def _owned_by(client: Any, pid: int) -> dict[str, list[str]]:
    def mine(labels: dict[str, str] | None) -> bool:
        return f"/{pid}/" in (labels or {}).get(OWNER_LABEL, "")

    flt = {"label": f"{PROJECT_LABEL}=tierlock"}
    return {
        "containers": [c["Id"] for c in client.api.containers(all=True, filters=flt)
                       if mine(c.get("Labels"))],
        "networks": [n["Id"] for n in client.api.networks(filters=flt) if mine(n.get("Labels"))],
        "volumes": [v["Name"] for v in (client.api.volumes(filters=flt) or {}).get("Volumes") or []
                    if mine(v.get("Labels"))],
    }


def _kill_mid_sample(client: Any, tmp_path: Path) -> int:
    """Start an eval in a subprocess, wait for its sandbox, SIGKILL it; returns its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspect_ai", "eval", "tests/data/sandbox/tasks.py@sleeper",
         "--model", "mockllm/model", "--sandbox", f"tierlock:{POLICY}",
         "--log-dir", str(tmp_path), "--display", "none"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not _owned_by(client, proc.pid)["containers"]:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the sandbox never appeared"
            time.sleep(0.3)
        time.sleep(1.0)  # mid-sample: the sleep is running inside
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.pid


@pytest.mark.docker
def test_sigkill_leftovers_removed_by_cli(docker_client: Any, tmp_path: Path) -> None:
    ensure_image(docker_client)
    pid = _kill_mid_sample(docker_client, tmp_path)
    left = _owned_by(docker_client, pid)
    assert len(left["containers"]) == 1  # the crashed run's sandbox is still there
    out = subprocess.run(["tierlock", "cleanup"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "removed container" in out.stdout
    assert _owned_by(docker_client, pid) == {"containers": [], "networks": [], "volumes": []}


@pytest.mark.docker
def test_dead_runs_leftovers_removed_at_next_start(docker_client: Any) -> None:
    """task_init removes objects whose owner process is gone, and leaves live runs' alone."""
    image = ensure_image(docker_client)
    dead_owner = f"{socket.gethostname()}/{_boot_id()}/999999999/1"
    dead = docker_client.containers.create(
        image, ["sleep", "60"], network_mode="none",
        labels={PROJECT_LABEL: "tierlock", OWNER_LABEL: dead_owner, RUN_LABEL: "crashed"})
    live = docker_client.containers.create(
        image, ["sleep", "60"], network_mode="none", labels=object_labels(role="test"))
    try:
        anyio.run(TierlockSandboxEnvironment.task_init, "startup", POLICY)
        assert _owned_by(docker_client, 999999999)["containers"] == []
        live.reload()  # still there
    finally:
        for c in (dead, live):
            with contextlib.suppress(Exception):
                c.remove(force=True)


@pytest.mark.docker
def test_a_paused_leftover_is_thawed_and_removed(docker_client: Any) -> None:
    """A crashed run's container left paused (removing it as is would block on this engine) is
    unpaused and removed by the start-up sweep."""
    from tierlock.sandbox._cleanup import cleanup

    image = ensure_image(docker_client)
    dead_owner = f"{socket.gethostname()}/{_boot_id()}/999999998/1"
    frozen = docker_client.containers.run(
        image, ["sleep", "60"], network_mode="none", detach=True,
        labels={PROJECT_LABEL: "tierlock", OWNER_LABEL: dead_owner, RUN_LABEL: "frozen"})
    try:
        frozen.pause()
        report = cleanup(docker_client)
        assert frozen.name in report.containers and not report.errors
        assert _owned_by(docker_client, 999999998)["containers"] == []
    finally:
        with contextlib.suppress(Exception):
            frozen.unpause()
        with contextlib.suppress(Exception):
            frozen.remove(force=True)


@pytest.mark.docker
def test_ctrl_c_mid_sample_leaves_nothing(docker_client: Any, tmp_path: Path) -> None:
    ensure_image(docker_client)
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspect_ai", "eval", "tests/data/sandbox/tasks.py@sleeper",
         "--model", "mockllm/model", "--sandbox", f"tierlock:{POLICY}",
         "--log-dir", str(tmp_path), "--display", "none"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not _owned_by(docker_client, proc.pid)["containers"]:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.3)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _owned_by(docker_client, proc.pid) == {"containers": [], "networks": [], "volumes": []}


def test_docker_not_reachable_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierlock.sandbox._docker import connect
    from tierlock.sandbox._errors import SandboxError

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxError) as info:
        connect(timeout=5)
    (line,) = info.value.lines()
    assert line.startswith("Docker is not reachable at unix:///nonexistent/docker.sock")
    out = subprocess.run(["tierlock", "cleanup"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Docker is not reachable" in out.stderr
