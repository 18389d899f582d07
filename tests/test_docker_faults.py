"""A slow or refusing Docker daemon: bounded waits, one clear line, nothing left behind.

A proxy of the tests' own (`tests/_docker_proxy.py`) sits in front of the real Docker socket and
holds (never answers), drops (closes) or delays chosen calls; tierlock is pointed at it with
`DOCKER_HOST` and a short `TIERLOCK_DOCKER_TIMEOUT`. What is left behind is always checked on the
real socket, never through the proxy. Waits are measured and printed; the only bound asserted is
a generous one (several times the deadline), never a timing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests._docker_proxy import DockerProxy, Rule
from tierlock.sandbox import _docker
from tierlock.sandbox._docker_deadline import TIMEOUT_ENV, DockerNoAnswer
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import OWNER_LABEL, RUN_LABEL, run_id
from tierlock.sandbox._provider import TierlockSandboxEnvironment as Box

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "policies" / "tool-restricted.yaml")
DEADLINE = 3
START = r"^POST /v[\d.]+/containers/[^/]+/start"
EXEC = r"/exec/"


def left(client: Any, label: str) -> list[str]:
    """This run's containers (any state) and networks, read on the real socket."""
    flt = {"label": label}
    containers = [f"{c.name} ({c.status})" for c in client.containers.list(all=True, filters=flt)]
    return containers + [f"network {n.name}" for n in client.networks.list(filters=flt)]


def owned_by(client: Any, pid: int) -> list[str]:
    """Containers and networks whose owner label names process `pid` (real socket)."""
    flt = {"label": OWNER_LABEL}
    found = [(c.name, c.labels) for c in client.containers.list(all=True, filters=flt)]
    found += [(f"network {n.name}", n.attrs.get("Labels") or {})
              for n in client.networks.list(filters=flt)]  # fmt: skip
    return [name for name, labels in found if labels[OWNER_LABEL].split("/")[2:3] == [str(pid)]]


@pytest.fixture
def through(monkeypatch: pytest.MonkeyPatch, docker_client: Any) -> Iterator[Any]:
    """`through(rules)`: a proxy with those rules, and this process's client pointed at it."""
    ensure_image(docker_client)
    proxies: list[DockerProxy] = []

    def start(rules: list[Rule]) -> DockerProxy:
        proxy = DockerProxy(rules).__enter__()
        proxies.append(proxy)
        monkeypatch.setenv("DOCKER_HOST", proxy.url)
        monkeypatch.setenv(TIMEOUT_ENV, str(DEADLINE))
        monkeypatch.setattr(_docker, "_client", None)  # the next get_client() dials the proxy
        return proxy

    yield start
    for proxy in proxies:
        proxy.__exit__(None, None, None)


def sample_life() -> None:
    """One sample outside an eval: setup, a command, cleanup."""

    async def main() -> None:
        envs = await Box.sample_init("docker-faults", POLICY, {})
        try:
            result = await envs["default"].exec(["sh", "-c", "echo hi"])
            assert result.stdout == "hi\n"
        finally:
            with anyio.CancelScope(shield=True):
                await Box.sample_cleanup("docker-faults", POLICY, envs, False)

    anyio.run(main)


def failed_life() -> tuple[str, float]:
    """(the error's one line, seconds) of a sample life that must fail with `DockerNoAnswer`."""
    started = time.monotonic()
    with pytest.raises(DockerNoAnswer) as caught:
        sample_life()
    return str(caught.value), time.monotonic() - started


@pytest.mark.parametrize(
    "rule, says",
    [
        (Rule(START, "hold", nth=frozenset({1})), rf"did not answer start on container "
         rf"tierlock-\S+ within {DEADLINE} s$"),
        (Rule(START, "close", nth=frozenset({1})), r"did not answer start on container "
         r"tierlock-\S+ \(the connection closed without an answer\)$"),
        (Rule(EXEC, "hold"), rf"did not answer exec start on container tierlock-\S+ within "
         rf"{DEADLINE} s$"),
        (Rule(START, "delay", seconds=DEADLINE + 2, nth=frozenset({1})), rf"did not answer "
         rf"start on container tierlock-\S+ within {DEADLINE} s$"),  # answered too late
    ],
    ids=["start-held", "start-dropped", "exec-held", "start-late"],
)  # fmt: skip
def test_a_call_docker_does_not_answer_is_one_line_and_leaves_no_container(
    through: Any, docker_client: Any, rule: Rule, says: str
) -> None:
    proxy = through([rule])
    message, seconds = failed_life()
    assert "\n" not in message
    assert re.fullmatch(rf"Docker {says}", message), message
    assert seconds < 5 * DEADLINE + 10, f"{seconds:.1f} s"
    assert sum(1 for _, _, action in proxy.seen if action.startswith(rule.action)) >= 1
    time.sleep(max(0.0, rule.seconds + 1 - seconds))  # a late call reaches the daemon first
    assert left(docker_client, f"{RUN_LABEL}={run_id()}") == []
    print(f"{rule.action} {rule.pattern}: failed after {seconds:.1f} s "
          f"(deadline {DEADLINE} s): {message}")  # fmt: skip


def test_a_slow_daemon_within_the_deadline_is_waited_for(through: Any, docker_client: Any) -> None:
    started = time.monotonic()
    sample_life()  # straight to the daemon, for comparison
    direct = time.monotonic() - started
    proxy = through([Rule(START, "delay", seconds=1.0), Rule(EXEC, "delay", seconds=0.5)])
    started = time.monotonic()
    sample_life()
    slow = time.monotonic() - started
    assert proxy.actions("delay:1.0") >= 1 and proxy.actions("delay:0.5") >= 1
    assert left(docker_client, f"{RUN_LABEL}={run_id()}") == []
    print(f"sample life direct {direct:.1f} s, with each start and exec call delayed "
          f"{slow:.1f} s ({proxy.actions('delay:0.5')} exec calls)")  # fmt: skip


def test_cleanup_against_a_held_daemon_stops_with_one_line(
    through: Any, docker_client: Any
) -> None:
    from tierlock.sandbox._cleanup import cleanup
    from tierlock.sandbox._docker import get_client

    proxy = through([Rule(r"^GET /v[\d.]+/containers/json", "hold")])
    started = time.monotonic()
    report = cleanup(get_client(), run=run_id())
    seconds = time.monotonic() - started
    assert report.errors == [
        f"Docker did not answer container list within {DEADLINE} s; "
        "the rest of the cleanup was not tried"
    ]
    assert seconds < 5 * DEADLINE, f"{seconds:.1f} s"
    assert proxy.actions("hold") == 1
    print(f"cleanup through a held container list: stopped after {seconds:.1f} s")


# --- a whole run -------------------------------------------------------------------------------

CAMPAIGN = f"""\
name: docker-faults
tiers:
  - tier: tool-restricted
    policy: {ROOT}/policies/tool-restricted.yaml
    tasks:
      - task: {ROOT}/tasks/tool_restricted/qualification.py@tool_restricted_qualification
        kind: qualification
        thresholds: ["task_completed/accuracy >= 0.9"]
    limits: {{messages: 40, tokens: 500k, time: 5m}}
"""


def test_a_run_whose_exec_calls_docker_never_answers_is_incomplete_in_bounded_time(
    tmp_path: Path, docker_client: Any
) -> None:
    from tierlock.runner import Ledger
    from tierlock.sandbox._selftest import cached_selftest

    ensure_image(docker_client)
    cached_selftest(POLICY)  # on the real socket: the tier's host check comes from the cache
    campaign = tmp_path / "faults.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    exe = shutil.which("tierlock") or "tierlock"
    argv = [exe, "run", str(campaign), "--model", "tierlock/diligent",
            "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    with DockerProxy([Rule(EXEC, "hold")]) as proxy:
        env = {**os.environ, "DOCKER_HOST": proxy.url, TIMEOUT_ENV: str(DEADLINE)}
        started = time.monotonic()
        child = subprocess.Popen(
            argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        out, err = child.communicate(timeout=900)
        seconds = time.monotonic() - started
        held = proxy.actions("hold")
    assert child.returncode == 3, out + err
    assert "Traceback" not in out + err
    said = re.findall(r"Docker did not answer exec start on container tierlock-\S+ "
                      rf"within {DEADLINE} s", out)  # fmt: skip
    assert said, out
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        verdicts = [r.payload["outcome"] for r in ledger.records() if r.kind == "verdict"]
    assert verdicts == ["incomplete"]
    assert owned_by(docker_client, child.pid) == []
    print(f"every exec call held: exit 3 after {seconds:.1f} s, {held} calls held "
          f"(deadline {DEADLINE} s); {said[0]}")  # fmt: skip


def test_a_run_whose_host_check_docker_never_answers_exits_3_with_one_line(
    tmp_path: Path, docker_client: Any
) -> None:
    from tierlock.runner import Ledger

    campaign = tmp_path / "faults.campaign.yaml"
    campaign.write_text(CAMPAIGN)
    exe = shutil.which("tierlock") or "tierlock"
    argv = [exe, "run", str(campaign), "--model", "tierlock/diligent",
            "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    # the version negotiation (`GET /version`) passes; the tier's host check asks again
    with DockerProxy([Rule(r"^GET /v[\d.]+/version", "hold")]) as proxy:
        env = {**os.environ, "DOCKER_HOST": proxy.url, TIMEOUT_ENV: str(DEADLINE)}
        started = time.monotonic()
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        seconds = time.monotonic() - started
    assert done.returncode == 3, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("tierlock:")]
    assert said == [f"tierlock: Docker did not answer GET /version within {DEADLINE} s"], (
        done.stderr
    )
    assert "Traceback" not in done.stdout + done.stderr
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        assert [r.kind for r in ledger.records()] == ["run_started"]
    print(f"host check held: exit 3 after {seconds:.1f} s: {said[0]}")


def test_each_call_is_named_by_its_operation_and_container() -> None:
    """The one line's words, for the calls tierlock makes (no daemon needed)."""
    from tierlock.sandbox._docker_deadline import _Names, describe

    names = _Names()
    cid, exec_id = "a" * 64, "b" * 64
    names.container(cid, "/tierlock-run-s1-abc123")
    names.exec(exec_id, cid)
    calls = {
        ("POST", "/v1.41/containers/create", "tierlock-x"): ("create", "container tierlock-x"),
        ("POST", f"/v1.41/containers/{cid}/start", None): ("start", "container tierlock-run-s1-abc123"),
        ("GET", f"/v1.41/containers/{cid[:12]}/json", None): ("inspect", "container tierlock-run-s1-abc123"),
        ("DELETE", f"/v1.41/containers/{cid}", None): ("remove", "container tierlock-run-s1-abc123"),
        ("POST", f"/v1.41/containers/{cid}/exec", None): ("exec create", "container tierlock-run-s1-abc123"),
        ("POST", f"/v1.41/exec/{exec_id}/start", None): ("exec start", "container tierlock-run-s1-abc123"),
        ("GET", f"/v1.41/exec/{exec_id}/json", None): ("exec inspect", "container tierlock-run-s1-abc123"),
        ("GET", f"/v1.41/exec/{'c' * 64}/json", None): ("exec inspect", f"exec {'c' * 12}"),
        ("GET", f"/v1.41/containers/{'d' * 64}/changes", None): ("diff", f"container {'d' * 12}"),
        ("DELETE", "/v1.41/networks/tierlock-net", None): ("network remove", "network tierlock-net"),
        ("GET", "/v1.41/containers/json", None): ("container list", ""),
        ("GET", "/v1.41/info", None): ("GET /info", ""),
    }  # fmt: skip
    for (method, path, name), expected in calls.items():
        params = {"name": name} if name else None
        assert describe(method, path, params, names) == expected, path
    assert str(DockerNoAnswer("start", "container x", 2.5)) == (
        "Docker did not answer start on container x within 2.5 s"
    )
