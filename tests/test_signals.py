"""SIGTERM/SIGHUP end a run like Ctrl-C and leave nothing behind (sandbox._signals).

Pure handler logic runs in small Python subprocesses (signals are process-wide). The claims about
Docker run on the real daemon: `inspect eval` and `tierlock run` are started in a subprocess, a
sample's sandbox is waited for (by its owner label), the process is signalled, and no container,
network or volume labelled with its run id may remain.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tierlock.runner import Ledger
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import OWNER_LABEL, PROJECT, PROJECT_LABEL, ROLE_LABEL, RUN_LABEL

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
EXIT_BOUND = 120
"""Seconds a signalled process may take to exit (a bound, not a timing claim)."""

TASKS = '''
"""Tasks whose one sample sleeps in its sandbox (while a marker file exists, when one is given)."""
from pathlib import Path

import anyio
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import CORRECT, Score, Target, accuracy, scorer
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import sandbox


@solver
def nap(marker, linger):
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        sleepy = marker is None or Path(marker).exists()
        try:
            result = await sandbox().exec(["sleep", "50"] if sleepy else ["true"])
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):  # a slow shutdown
                await anyio.sleep(linger)
            raise
        state.metadata["exit"] = result.returncode
        return state
    return solve


@scorer(metrics=[accuracy()])
def done():
    async def score(state: TaskState, target: Target) -> Score:
        return Score(value=CORRECT if state.metadata.get("exit") == 0 else "I")
    return score


@task
def napper(policy: str = "policies/tool-restricted.yaml", marker: str | None = None,
           networked: bool = False, linger: float = 0) -> Task:
    if networked:
        from tierlock.tasks.networked._service import sandbox_config

        box = ("tierlock", sandbox_config(Path(policy)))
    else:
        box = ("tierlock", policy)
    return Task(dataset=[Sample(input="nap", id="nap")], solver=nap(marker, linger), scorer=done(),
                sandbox=box)
'''


# --- the handler, without Docker --------------------------------------------------------------


def _python(code: str, *, wait_for: str = "ready", send: tuple[int, ...] = (signal.SIGTERM,),
            env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `code`, wait for `wait_for` on its stdout, send the signals; (code, stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == wait_for, first + (proc.stderr.read() if proc.stderr else "")
        err = _send(proc, send)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, first + out, err + rest


def _send(proc: subprocess.Popen, signals: tuple[int, ...]) -> str:
    """Send the signals in order, each after the previous one was acknowledged on stderr (Python
    runs the handlers of signals pending together in signal-number order); returns what was read."""
    seen = ""
    for i, sig in enumerate(signals):
        proc.send_signal(sig)
        if i < len(signals) - 1:
            seen += _read_until(proc, " received: ")
    return seen


def _read_until(proc: subprocess.Popen, text: str) -> str:
    """Read the process's stderr until a line contains `text`; returns what was read."""
    assert proc.stderr is not None
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"stderr ended before {text!r}:\n{seen}"
        seen += line
    return seen


def test_sigterm_interrupts_like_ctrl_c_and_exits_143() -> None:
    code, out, err = _python("""
        import time
        from tierlock.sandbox import install_termination_handler, received_signal
        assert install_termination_handler()
        try:  # ready inside: a signal as print returns lands in the try
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("interrupted", received_signal(), flush=True)
        print("cleanup ran", flush=True)
    """)
    assert out.split("\n")[1:3] == [f"interrupted {int(signal.SIGTERM)}", "cleanup ran"]
    assert "SIGTERM received" in err
    assert code == 128 + signal.SIGTERM


def test_sighup_too_and_the_callers_own_exit_code_stands() -> None:
    code, _, err = _python("""
        import sys, time
        from tierlock.sandbox import install_termination_handler
        assert install_termination_handler(caller_exits=True)
        try:  # ready inside: a signal as print returns lands in the try
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            sys.exit(7)
    """, send=(signal.SIGHUP,))
    assert code == 7
    assert err == ""  # the caller reports (tierlock run prints its own line)


def test_sigterm_goes_through_asyncio_cancellation() -> None:
    """In an event loop, SIGTERM reaches asyncio's Ctrl-C handler: the main task is cancelled
    and its cleanup runs (as Inspect's sample cleanup does) before the process exits."""
    code, out, _ = _python("""
        import asyncio
        from tierlock.sandbox import install_termination_handler

        async def main():
            assert install_termination_handler()
            try:  # ready inside: a signal as print returns lands in the try
                print("ready", flush=True)
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(0.2)  # cleanup may still await
                print("cancelled and cleaned up", flush=True)
                raise

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt after cleanup", flush=True)
    """)
    assert out.split("\n")[1:3] == ["cancelled and cleaned up", "KeyboardInterrupt after cleanup"]
    assert code == 128 + signal.SIGTERM


def test_second_signal_exits_at_once() -> None:
    code, _, err = _python("""
        import time
        from tierlock.sandbox import install_termination_handler
        assert install_termination_handler()
        try:  # ready inside: a signal as print returns lands in the try
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            time.sleep(60)  # a slow shutdown
    """, send=(signal.SIGTERM, signal.SIGHUP))
    assert "SIGHUP again" in err
    assert code == 128 + signal.SIGHUP


def test_watchdog_ends_a_process_that_ignores_the_interruption() -> None:
    code, _, err = _python("""
        import time
        from tierlock.sandbox import install_termination_handler
        assert install_termination_handler()
        try:  # ready inside: a signal as print returns lands in the try
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            pass
        time.sleep(60)  # carries on as if nothing happened
    """, env={"TIERLOCK_TERM_GRACE": "1"})
    assert "still running 1s after SIGTERM" in err
    assert code == 128 + signal.SIGTERM


def test_leaves_other_handlers_and_other_threads_alone() -> None:
    code, out, _ = _python("""
        import signal, threading
        from tierlock.sandbox import install_termination_handler
        mine = lambda s, f: None
        signal.signal(signal.SIGTERM, mine)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)      # nohup
        assert install_termination_handler() is False
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        result = []
        t = threading.Thread(target=lambda: result.append(install_termination_handler()))
        t.start(); t.join()
        assert result == [False] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert install_termination_handler() and install_termination_handler()  # idempotent
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        print("ready", flush=True)
    """, send=())
    assert code == 0, out


# --- on the real daemon -----------------------------------------------------------------------


def _objects(client: Any, *, owner_pid: int | None = None, run: str | None = None
             ) -> dict[str, list[dict[str, Any]]]:
    """tierlock's containers, networks and volumes of one process (owner pid) or run id."""

    def match(labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        if run is not None:
            return labels.get(RUN_LABEL) == run
        return f"/{owner_pid}/" in labels.get(OWNER_LABEL, "")

    flt = {"label": f"{PROJECT_LABEL}={PROJECT}"}
    volumes = (client.api.volumes(filters=flt) or {}).get("Volumes") or []
    return {
        "containers": [c for c in client.api.containers(all=True, filters=flt)
                       if match(c.get("Labels"))],
        "networks": [n for n in client.api.networks(filters=flt) if match(n.get("Labels"))],
        "volumes": [v for v in volumes if match(v.get("Labels"))],
    }


def _names(objects: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [str(o.get("Names") or o.get("Name") or o.get("Id")) for v in objects.values() for o in v]


@pytest.fixture
def start(docker_client: Any) -> Iterator[Callable[[list[str], Path], subprocess.Popen]]:
    """Starts processes; at teardown, one still running (a failed test) is killed and its
    objects removed, so a failure leaves nothing behind either."""
    procs: list[subprocess.Popen] = []

    def run(argv: list[str], cwd: Path) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        left = _objects(docker_client, owner_pid=proc.pid)  # containers first, then the rest
        api = docker_client.api
        for c in left["containers"]:
            with contextlib.suppress(Exception):
                api.remove_container(c["Id"], force=True, v=True)
        for n in left["networks"]:
            with contextlib.suppress(Exception):
                api.remove_network(n["Id"])
        for v in left["volumes"]:
            with contextlib.suppress(Exception):
                api.remove_volume(v["Name"], force=True)


def _wait_for_sandbox(client: Any, proc: subprocess.Popen, count: int = 1) -> str:
    """Wait until the process's sample sandbox runs with `count` containers in all (the
    sandbox, plus the proxy and sidecars of a networked one); returns its run id."""
    deadline = time.monotonic() + 240
    while True:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited {proc.returncode} before its sandbox was up:\n{out}\n{err[-3000:]}")
        found = _objects(client, owner_pid=proc.pid)["containers"]
        running = [c["Labels"].get(ROLE_LABEL) for c in found if c.get("State") == "running"]
        if "default" in running and len(running) >= count:
            return found[0]["Labels"][RUN_LABEL]
        assert time.monotonic() < deadline, "the sandbox never came up"
        time.sleep(0.3)


def _signal_and_wait(proc: subprocess.Popen, *signals: int) -> tuple[int, str, str]:
    try:
        seen = _send(proc, signals)
        out, err = proc.communicate(timeout=EXIT_BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, seen + err


def _eval(tmp_path: Path, policy: str, *task_args: str) -> list[str]:
    tasks = tmp_path / "naps.py"
    tasks.write_text(TASKS)
    return [sys.executable, "-m", "inspect_ai", "eval", f"{tasks}@napper",
            "-T", f"policy={POLICIES / policy}", *task_args, "--model", "mockllm/model",
            "--log-dir", str(tmp_path / "logs"), "--display", "none"]


@pytest.fixture
def image(docker_client: Any) -> str:
    return ensure_image(docker_client)


@pytest.mark.docker
def test_sigterm_mid_sample_leaves_nothing(
    docker_client: Any, image: str, start: Any, tmp_path: Path
) -> None:
    proc = start(_eval(tmp_path, "tool-restricted.yaml"), ROOT)
    run = _wait_for_sandbox(docker_client, proc)
    time.sleep(1.0)  # mid-sample: the sleep runs inside
    code, _, err = _signal_and_wait(proc, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    assert "SIGTERM received" in err
    assert _names(_objects(docker_client, run=run)) == []
    assert _names(_objects(docker_client, owner_pid=proc.pid)) == []


@pytest.mark.docker
def test_a_second_signal_still_leaves_nothing(
    docker_client: Any, image: str, start: Any, tmp_path: Path
) -> None:
    proc = start(_eval(tmp_path, "tool-restricted.yaml"), ROOT)
    run = _wait_for_sandbox(docker_client, proc)
    code, _, err = _signal_and_wait(proc, signal.SIGTERM, signal.SIGHUP)
    assert "SIGHUP again" in err, err[-3000:]  # the last-resort path, not the graceful one
    assert code == 128 + signal.SIGHUP
    assert _names(_objects(docker_client, run=run)) == []


@pytest.mark.docker
def test_a_second_sigterm_during_a_slow_shutdown_still_leaves_nothing(
    docker_client: Any, image: str, start: Any, tmp_path: Path
) -> None:
    """Inspect's control server captures SIGTERM while it serves and restores the default
    when it stops; the second SIGTERM, sent once it has stopped, must still reach tierlock."""
    proc = start(_eval(tmp_path, "tool-restricted.yaml", "-T", "linger=30"), ROOT)
    run = _wait_for_sandbox(docker_client, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    seen = _read_until(proc, " received: ")
    time.sleep(2.0)  # the control server has stopped; the sample lingers in its cleanup
    assert proc.poll() is None
    code, _, err = _signal_and_wait(proc, signal.SIGTERM)
    assert "SIGTERM again" in err, seen + err[-3000:]
    assert code == 128 + signal.SIGTERM
    assert _names(_objects(docker_client, run=run)) == []


@pytest.mark.docker
def test_sigterm_mid_networked_sample_leaves_no_sidecar_or_network(
    docker_client: Any, image: str, start: Any, tmp_path: Path
) -> None:
    proc = start(_eval(tmp_path, "networked.yaml", "-T", "networked=true"), ROOT)
    run = _wait_for_sandbox(docker_client, proc, count=3)  # sandbox, proxy, api sidecar
    before = _objects(docker_client, run=run)
    roles = {c["Labels"].get(ROLE_LABEL) for c in before["containers"]}
    assert "proxy" in roles and any("api" in str(r) for r in roles), roles
    assert before["networks"], "an allowlist sample has its own network"
    time.sleep(1.0)
    code, _, err = _signal_and_wait(proc, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    assert _names(_objects(docker_client, run=run)) == []
    for net in before["networks"]:  # gone by id too, whatever its labels
        assert not docker_client.api.networks(ids=[net["Id"]])


# --- tierlock run -----------------------------------------------------------------------------


def _campaign(tmp_path: Path, marker: Path) -> Path:
    (tmp_path / "naps.py").write_text(TASKS)
    camp = tmp_path / "campaign.yaml"
    camp.write_text(textwrap.dedent(f"""\
        name: naps
        tiers:
          - tier: tool-restricted
            policy: {POLICIES / "tool-restricted.yaml"}
            tasks:
              - task: naps.py@napper
                kind: qualification
                args: {{marker: {marker}}}
                thresholds: ["accuracy >= 1.0"]
            gate: {{max_severity: none, approval_required: false}}
    """))
    return camp


def _ledger_records(runs: Path) -> list[Any]:
    with Ledger(runs / "ledger.sqlite") as ledger:
        return list(ledger.records())


@pytest.mark.docker
@pytest.mark.slow
def test_tierlock_run_interrupted_then_resumed(
    docker_client: Any, image: str, start: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "sleep-while-this-exists"
    marker.touch()
    camp = _campaign(tmp_path, marker)
    runs = tmp_path / "runs"
    argv = ["tierlock", "run", str(camp), "--model", "mockllm/model", "--runs-dir", str(runs)]

    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, then SIGTERM on the resumed run
        proc = start(argv, tmp_path)
        run = _wait_for_sandbox(docker_client, proc)
        time.sleep(1.0)
        code, out, err = _signal_and_wait(proc, sig)
        assert code == 128 + sig, out + err[-3000:]
        said = [line for line in (out + err).splitlines() if "interrupted" in line]
        assert len(said) == 1, out + err
        assert said[0].startswith("tierlock: run naps-mockllm_model interrupted by " + sig.name)
        assert _names(_objects(docker_client, run=run)) == []
        kinds = [r.kind for r in _ledger_records(runs)]
        assert "verdict" not in kinds and "run_finished" not in kinds, kinds

    marker.unlink()  # the resumed run's sample finishes at once
    done = start(argv, tmp_path)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, out + err[-3000:]
    assert _names(_objects(docker_client, owner_pid=done.pid)) == []
    records = _ledger_records(runs)
    assert [r.kind for r in records].count("run_started") == 1
    assert [r.kind for r in records].count("run_resumed") == 2
    assert [r.kind for r in records].count("tier_started") == 3
    verdicts = [r for r in records if r.kind == "verdict"]
    assert len(verdicts) == 1 and verdicts[0].payload["outcome"] == "clean", verdicts
    verify = subprocess.run(["tierlock", "verify", "--runs-dir", str(runs)], capture_output=True,
                            text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
