"""The warm pool's invariants on the real daemon (sandbox._warm_pool, issue 14 items 2 and 6).

Evals run through Inspect with `TIERLOCK_WARM_POOL` set: in this process (one sample per
container, never more than `max_sandboxes`, each sample's transcript records its conformance,
emptied after a normal end and after a failing sample, discarded when the policy file changes
mid-run) and in a child process that is interrupted (Ctrl-C, SIGTERM: nothing left) or
SIGKILLed (its pooled containers are left, and the sweep the next start runs removes them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _sandbox_helpers import evidence
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import sandbox

from tierlock.sandbox import _warm_pool
from tierlock.sandbox._cleanup import cleanup
from tierlock.sandbox._evidence import ConformanceRecord, ContainerEvidence
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import OWNER_LABEL, POLICY_LABEL, RUN_LABEL, run_id
from tierlock.sandbox._loader import load_policy_file
from tierlock.sandbox._provider import TierlockSandboxEnvironment
from tierlock.sandbox._warm_pool_fill import POOL_LABEL

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "tool-restricted.yaml"


@pytest.fixture
def image(docker_client: Any) -> str:
    return ensure_image(docker_client)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The warm pool on (2 containers), its counters reset."""
    monkeypatch.setenv("TIERLOCK_WARM_POOL", "2")
    _warm_pool.stats.clear()
    yield
    assert not _warm_pool._pools, "a pool outlived its eval"


def _ours(client: Any) -> list[dict[str, Any]]:
    return client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id()}"})


class Watch:
    """Polls this run's containers while an eval runs: the most seen at once, every id seen."""

    def __init__(self, client: Any) -> None:
        self.client, self.peak, self.seen, self.stop = client, 0, set[str](), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                ids = {c["Id"] for c in _ours(self.client)}
                self.peak, self.seen = max(self.peak, len(ids)), self.seen | ids
            time.sleep(0.05)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _ready_in_pool() -> bool:
    return any(f.done() and f.exception() is None
               for p in list(_warm_pool._pools.values()) for f in list(p.entries))


async def _until_pool_ready() -> None:
    with anyio.fail_after(60):
        while not _ready_in_pool():
            await anyio.sleep(0.05)


@solver
def use_box(fail_on: str | None = None, change: tuple[Path, str] | None = None):
    """Notes the sample's container and whether it was fresh (no marker left by anyone); on
    sample `fail_on` raises, and on sample 'change' rewrites a policy file, each once the pool
    holds a checked container."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        box = sandbox().as_type(TierlockSandboxEnvironment)
        r = await box.exec(["sh", "-c", "test ! -e /workspace/used && touch /workspace/used"])
        state.metadata.update(container=box.container_id, fresh=r.success)
        if state.sample_id == fail_on:
            await _until_pool_ready()
            raise RuntimeError("this sample fails")
        if change is not None and state.sample_id == "change":
            await _until_pool_ready()
            change[0].write_text(change[1])
        await anyio.sleep(0.3)
        return state

    return solve


def _eval(samples: list[str], policy: Path, **kwargs: Any) -> Any:
    solver_args = {k: kwargs.pop(k) for k in ("fail_on", "change") if k in kwargs}
    task = Task(dataset=[Sample(input=s, id=s) for s in samples], solver=use_box(**solver_args),
                sandbox=("tierlock", str(policy)))
    return eval(task, model="mockllm/model", display="none", log_level="error", score=False,
                **kwargs)[0]


def test_one_sample_per_fresh_checked_container_within_max_sandboxes(
    docker_client: Any, image: str, pool: None, tmp_path: Path
) -> None:
    with Watch(docker_client) as watch:
        log = _eval([f"s{i}" for i in range(8)], POLICY, max_samples=2, max_sandboxes=3,
                    log_dir=str(tmp_path))
    assert log.status == "success", log.error
    samples = log.samples or []
    assert len(samples) == 8
    ids = [s.metadata["container"] for s in samples]
    assert len(set(ids)) == 8, "a container served two samples"
    assert all(s.metadata["fresh"] for s in samples), "a sample found another's marker"
    pooled = 0
    for s in samples:
        records = evidence(s)
        conf = [r for r in records if isinstance(r, ConformanceRecord)]
        final = [r for r in records if isinstance(r, ContainerEvidence)]
        assert len(conf) == 1 and conf[0].ok, conf
        assert len(final) == 1 and final[0].container == conf[0].container  # evidence at cleanup
        if conf[0].pooled:
            pooled += 1
            assert conf[0].checked_at is not None and conf[0].checked_at <= time.time()
    assert pooled >= 1, "no sample got a pooled container"
    assert watch.peak <= 3, f"{watch.peak} containers at once with max_sandboxes=3"
    assert _warm_pool.stats["peak"] <= 3
    assert _ours(docker_client) == [], "left after a normal end"
    made, stats = _warm_pool.stats["created"], _warm_pool.stats
    assert made == stats["taken"] + stats["discarded"], dict(stats)
    assert set(ids) <= watch.seen  # what the watch saw was this eval's


def test_unused_containers_removed_at_a_normal_end(
    docker_client: Any, image: str, pool: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without Inspect's sample counts the pool fills to its size: what is left at the end is
    removed by the task's cleanup."""
    monkeypatch.setattr(_warm_pool, "demand", lambda: None)
    monkeypatch.setattr(_warm_pool, "DEMAND_WAIT", 0.0)
    log = _eval(["a", "b", "c"], POLICY, max_samples=1, max_sandboxes=4, log_dir=str(tmp_path))
    assert log.status == "success", log.error
    stats = _warm_pool.stats
    assert stats["discarded"] >= 1, dict(stats)  # the pool still held some at the end
    assert stats["created"] == stats["taken"] + stats["discarded"], dict(stats)
    assert stats["peak"] <= 4
    assert _ours(docker_client) == []


def test_emptied_after_a_failing_sample(
    docker_client: Any, image: str, pool: None, tmp_path: Path
) -> None:
    log = _eval(["a", "b", "c", "d"], POLICY, max_samples=1, max_sandboxes=3, fail_on="b",
                log_dir=str(tmp_path))
    assert log.status == "error" and "this sample fails" in str(log.error)
    assert _warm_pool.stats["created"] > _warm_pool.stats["taken"]  # the pool held some
    assert _ours(docker_client) == []


@pytest.fixture
def created_from(docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Container id → the policy digest it was created with (its label), for every container
    this process creates."""
    import tierlock.sandbox._provider as provider
    import tierlock.sandbox._warm_pool_fill as fill

    seen: dict[str, str] = {}
    real = fill.create_container

    def spy(client: Any, settings: dict[str, Any]) -> Any:
        c = real(client, settings)
        seen[c.id] = settings["labels"][POLICY_LABEL]
        return c

    monkeypatch.setattr(fill, "create_container", spy)
    monkeypatch.setattr(provider, "create_container", spy)
    return seen


def test_pool_built_from_a_changed_policy_is_discarded(
    docker_client: Any, image: str, pool: None, created_from: dict[str, str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    text = POLICY.read_text()
    policy.write_text(text)
    changed = text.replace("pids: 256", "pids: 200")
    assert changed != text
    old = load_policy_file(policy).policy.digest()
    log = _eval(["change", "after1", "after2", "after3"], policy, max_samples=1, max_sandboxes=3,
                change=(policy, changed), log_dir=str(tmp_path / "logs"))
    assert log.status == "success", log.error
    new = load_policy_file(policy).policy.digest()
    assert new != old
    by_id = {s.id: s for s in log.samples or []}
    assert _warm_pool.stats["stale_pools"] >= 1
    used = {by_id[sid].metadata["container"] for sid in by_id}
    assert created_from[by_id["change"].metadata["container"]] == old
    for sid in ("after1", "after2", "after3"):
        (conf,) = [r for r in evidence(by_id[sid]) if isinstance(r, ConformanceRecord)]
        assert conf.policy_hash == new, sid
        # what the container was made from (its label at creation), not only what was recorded
        assert created_from[by_id[sid].metadata["container"]] == new, sid
    unused_old = {cid for cid, digest in created_from.items() if digest == old} - used
    assert unused_old, "the pool held no container made from the old policy"
    assert _ours(docker_client) == []


# --- a child process running an eval ----------------------------------------------------------

TASKS = '''
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import sandbox


@solver
def nap():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        await sandbox().exec(["sleep", "50"])
        return state
    return solve


@task
def naps(policy: str) -> Task:
    return Task(dataset=[Sample(input="nap", id=i) for i in range(4)], solver=nap(),
                sandbox=("tierlock", policy))
'''


def _owned_by(client: Any, pid: int) -> list[dict[str, Any]]:
    return [c for c in client.api.containers(all=True, filters={"label": "tierlock.project"})
            if f"/{pid}/" in (c.get("Labels") or {}).get(OWNER_LABEL, "")]


@pytest.fixture
def child(docker_client: Any, image: str, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """`inspect eval` of 4 sleeping samples, one at a time, a pool of 2, max 3 sandboxes;
    returned once a sample runs and the pool holds a checked container (removed at teardown
    if the test failed)."""
    (tmp_path / "naps.py").write_text(TASKS)
    argv = [sys.executable, "-m", "inspect_ai", "eval", f"{tmp_path / 'naps.py'}@naps",
            "-T", f"policy={POLICY}", "--model", "mockllm/model", "--max-samples", "1",
            "--max-sandboxes", "3", "--log-dir", str(tmp_path / "logs"), "--display", "none"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TIERLOCK_WARM_POOL": "2"})
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"eval exited {proc.returncode}: {proc.communicate()[1][-2000:]}")
            running = [c for c in _owned_by(docker_client, proc.pid) if c["State"] == "running"]
            idle = [c for c in running if "-pool-" in c["Names"][0]]
            if idle and len(running) > len(idle):
                break
            assert time.monotonic() < deadline, "no pooled container came up"
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for c in _owned_by(docker_client, proc.pid):
            with contextlib.suppress(Exception):
                docker_client.api.remove_container(c["Id"], force=True, v=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_eval_leaves_no_pooled_container(
    docker_client: Any, child: subprocess.Popen, sig: int
) -> None:
    assert any(POOL_LABEL in c["Labels"] for c in _owned_by(docker_client, child.pid))
    child.send_signal(sig)
    child.communicate(timeout=120)
    assert _owned_by(docker_client, child.pid) == []


def test_sigkilled_eval_pool_is_swept_by_the_next_start(
    docker_client: Any, child: subprocess.Popen
) -> None:
    child.kill()
    child.wait(timeout=30)
    left = _owned_by(docker_client, child.pid)
    assert any("-pool-" in c["Names"][0] for c in left), "nothing pooled was left to sweep"
    cleanup(docker_client)  # what the next start's task_init runs
    assert _owned_by(docker_client, child.pid) == []
