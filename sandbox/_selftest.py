"""`tierlock selftest`: the escape battery, run inside a policy's real sandbox on this host.

Containment is a property of the policy *and* the host (kernel, engine, runtime), so tierlock
checks it where it runs instead of trusting a table. Four kinds of probe:

- in-sandbox probes (`_selftest_inside*.py`, joined into one script), one process as the
  model's user: syscalls, socket families, masked kernel files, devices, IPC, read-only paths,
  limits, environment, network;
- host-side probes: the container's namespaces against the host's;
- across calls: no process a command started outlives it (background, `setsid`, double fork,
  a command that kills its own timeout wrapper); timeouts and output caps are enforced;
- across samples: two sandboxes of the same policy at once run as different uids, so per-user
  kernel quotas (inotify instances, RLIMIT_NPROC) are never shared.

A probe that cannot run is reported as not held: what cannot be shown contained is not contained.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import anyio

from ._policy import Policy

CATEGORIES = (
    "identity", "privilege", "process", "namespace", "syscall", "socket", "kernel", "cgroup",
    "filesystem", "ipc", "resources", "leak", "network", "timeout", "samples",
)  # fmt: skip

SURVIVORS = "sleep 7301 & setsid sleep 7302 & (sleep 7303 &) ; nohup sleep 7304 >/dev/null 2>&1 &"
"""One command that leaves four kinds of background process behind if it can."""


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome: `held` is True when the sandbox contained what was tried."""

    id: str
    held: bool
    detail: str

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class SelftestReport:
    """Every probe of one policy on this host."""

    policy: str
    policy_hash: str
    probes: tuple[ProbeResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.probes) and all(p.held for p in self.probes)

    @property
    def failed(self) -> list[ProbeResult]:
        return [p for p in self.probes if not p.held]

    def payload(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policy_hash": self.policy_hash,
            "ok": self.ok,
            "probes": [asdict(p) for p in self.probes],
        }


def policy_facts(policy: Policy) -> dict[str, Any]:
    """What the in-sandbox probes compare against."""
    return {
        "writable": [{"path": w.path, "size": w.size} for w in policy.filesystem.writable],
        "network": policy.network.mode,
        "memory": policy.limits.memory,
        "pids": policy.limits.pids,
        "cpus": policy.limits.cpus,
        "env": sorted(policy.env),
        "workdir": policy.filesystem.workdir,
    }


INSIDE_PARTS = (
    "_selftest_inside_base.py",
    "_selftest_inside_kernel.py",
    "_selftest_inside_resources.py",
    "_selftest_inside_leak.py",
    "_selftest_inside.py",
)
"""The in-sandbox program's files, in the order they are joined into its one script."""


def inside_source() -> str:
    """The in-sandbox program as one script: its parts in order, without their imports of each
    other and with only the first part's `from __future__` import (both must be, and may be,
    dropped: in one script the parts share one namespace)."""
    files = resources.files(__package__)
    return "\n".join(
        _script_part(files.joinpath(name).read_text(), keep_future=n == 0)
        for n, name in enumerate(INSIDE_PARTS)
    )


def _script_part(text: str, *, keep_future: bool) -> str:
    """`text` with its relative imports (and, unless `keep_future`, its `from __future__`
    import) blanked out, line numbers kept."""
    import ast

    lines = text.split("\n")
    for node in ast.parse(text).body:
        if isinstance(node, ast.ImportFrom) and (
            node.level > 0 or (node.module == "__future__" and not keep_future)
        ):
            end = node.end_lineno or node.lineno
            lines[node.lineno - 1 : end] = [""] * (end - node.lineno + 1)
    return "\n".join(lines)


def parse_probe_lines(text: str) -> list[ProbeResult]:
    """The in-sandbox probes' JSON lines; a line that is not one is itself a failed probe."""
    out: list[ProbeResult] = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            d = json.loads(line)
            out.append(ProbeResult(str(d["id"]), d["held"] is True, str(d["detail"])))
        except (ValueError, KeyError, TypeError):
            out.append(
                ProbeResult(f"selftest.output-line-{n}", False, f"unparsable: {line[:80]!r}")
            )
    return out


async def _inside(env: Any, policy: Policy) -> list[ProbeResult]:
    facts = json.dumps(policy_facts(policy))
    r = await env.exec(["python3", "-", facts], input=inside_source(), timeout=120)
    results = parse_probe_lines(r.stdout)
    if r.returncode != 0 or not results:
        results.append(
            ProbeResult("selftest.inside-ran", False, f"exit {r.returncode}: {r.stderr[-200:]}")
        )
    return results


def _namespaces(container_pid: int) -> list[ProbeResult]:
    out = []
    for ns in ("mnt", "pid", "net", "ipc", "uts", "cgroup"):
        try:
            inside = os.stat(f"/proc/{container_pid}/ns/{ns}").st_ino
            host = os.stat(f"/proc/self/ns/{ns}").st_ino
        except OSError as e:
            out.append(ProbeResult(f"namespace.{ns}-private", False, f"cannot compare: {e}"))
            continue
        out.append(
            ProbeResult(
                f"namespace.{ns}-private",
                inside != host,
                "private" if inside != host else "shared with the host",
            )
        )
    return out


async def _survivors(env: Any) -> list[ProbeResult]:
    from inspect_ai.util import OutputLimitExceededError

    await env.exec(["sh", "-c", SURVIVORS], timeout=10)
    await anyio.sleep(0.5)
    ps = (await env.exec(["ps", "-eo", "args"], timeout=10)).stdout
    out = [
        ProbeResult(
            f"process.no-survivor-{kind}",
            f"sleep {n}" not in ps,
            "killed with its command" if f"sleep {n}" not in ps else "still running after return",
        )
        for kind, n in (("background", 7301), ("setsid", 7302), ("double-fork", 7303),
                        ("nohup", 7304))
    ]  # fmt: skip
    killer = "sleep 7305 >/dev/null 2>&1 & kill -9 $PPID; sleep 1"
    # The wrapper's death may surface as an error; only the survivors matter here.
    with contextlib.suppress(Exception):
        await env.exec(["sh", "-c", killer], timeout=10)
    await anyio.sleep(0.5)
    ps = (await env.exec(["ps", "-eo", "args"], timeout=10)).stdout
    out.append(
        ProbeResult(
            "process.no-survivor-wrapper-killed",
            "sleep 7305" not in ps,
            "killed" if "sleep 7305" not in ps else "outlived a command that killed its wrapper",
        )
    )
    t0 = anyio.current_time()
    try:
        await env.exec(["sleep", "30"], timeout=2)
        out.append(ProbeResult("timeout.enforced", False, "sleep 30 returned normally"))
    except TimeoutError:
        took = anyio.current_time() - t0
        out.append(ProbeResult("timeout.enforced", took < 20, f"timed out after {took:.1f}s"))
    limit = env.policy.limits.output_bytes
    try:
        await env.exec(["head", "-c", str(limit + 4096), "/dev/zero"], timeout=30)
        out.append(ProbeResult("timeout.output-cap", False, "output past the cap was returned"))
    except OutputLimitExceededError:
        out.append(ProbeResult("timeout.output-cap", True, f"refused past {limit} bytes"))
    return out


async def _across_samples(a: Any, b: Any) -> list[ProbeResult]:
    ua = (await a.exec(["id", "-u"], timeout=10)).stdout.strip()
    ub = (await b.exec(["id", "-u"], timeout=10)).stdout.strip()
    hog = (
        "import ctypes,time;L=ctypes.CDLL(None);fds=[]\n"
        "while len(fds)<100000:\n fd=L.inotify_init1(0)\n if fd<0: break\n fds.append(fd)\n"
        "print(len(fds),flush=True);time.sleep(4)"
    )
    tryit = "import ctypes;print(ctypes.CDLL(None).inotify_init1(0))"
    got: dict[str, str] = {}

    async def hold() -> None:
        got["a"] = (await a.exec(["python3", "-c", hog], timeout=20)).stdout.strip()

    async def probe() -> None:
        await anyio.sleep(2)
        got["b"] = (await b.exec(["python3", "-c", tryit], timeout=10)).stdout.strip()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        tg.start_soon(probe)
    starved = got.get("b", "-1").lstrip("-").isdigit() and int(got.get("b", "-1")) < 0
    return [
        ProbeResult("samples.distinct-uid", ua != ub and ua.isdigit(), f"uids {ua} and {ub}"),
        ProbeResult(
            "samples.inotify-not-shared",
            not starved,
            f"sample A took {got.get('a', '?')} instances; sample B "
            + ("was starved" if starved else "still got one"),
        ),
    ]


async def run_selftest(policy_path: str) -> SelftestReport:
    """Run the whole battery against `policy_path`'s sandbox; every container is removed."""
    from ._provider import TierlockSandboxEnvironment as Env

    task = "tierlock-selftest"
    envs_a = await Env.sample_init(task, policy_path, {})
    envs_b: dict[str, Any] = {}
    try:
        a = envs_a["default"]
        assert isinstance(a, Env)
        policy = a.policy
        results = await _unless_stuck("selftest.inside-ran", _inside(a, policy))
        pid = a._box.client.api.inspect_container(a.container_id)["State"]["Pid"]
        results += _namespaces(int(pid))
        results += await _unless_stuck("selftest.survivors-ran", _survivors(a))
        envs_b = await Env.sample_init(task, policy_path, {})
        results += await _unless_stuck(
            "selftest.across-samples-ran", _across_samples(a, envs_b["default"])
        )
    finally:
        with anyio.CancelScope(shield=True):
            for envs in (envs_b, envs_a):
                if envs:
                    await Env.sample_cleanup(task, policy_path, envs, False)
    return SelftestReport(str(policy_path), policy.digest(), tuple(results))


async def _unless_stuck(probe: str, probes: Awaitable[list[ProbeResult]]) -> list[ProbeResult]:
    """A group of probes whose command timed out is one failed probe (the battery did not run:
    it did not hold), not an exception that ends the command without a verdict."""
    try:
        return await probes
    except TimeoutError as e:
        return [ProbeResult(probe, False, f"a command of the battery timed out ({e})")]


BATTERY_FILES = ("_selftest.py", *INSIDE_PARTS)


def selftest_key(policy_path: str) -> dict[str, str]:
    """What a selftest result holds for: this host (name, boot, kernel), the engine, the runtime,
    the sandbox the effective policy makes (`sandbox_digest`) and the battery itself. Any change
    means the probes run again."""
    import hashlib
    import platform
    import socket

    from ._docker import get_client
    from ._sandbox_policy import load_sandbox_policy

    policy = load_sandbox_policy(policy_path).policy
    battery = hashlib.sha256()
    for name in BATTERY_FILES:
        battery.update(resources.files(__package__).joinpath(name).read_bytes())
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown"
    version = get_client().version()
    return {
        "host": socket.gethostname(),
        "boot": boot,
        "kernel": platform.release(),
        "engine": str(version.get("Version", "?")),
        "runtime": policy.process.runtime,
        "sandbox": sandbox_digest(policy),
        "battery": battery.hexdigest()[:16],
    }


def sandbox_digest(policy: Policy) -> str:
    """SHA-256 of what makes the sandbox: the policy without its name, description and tool
    list (which change no container setting), so renaming a policy reuses its selftest."""
    import hashlib

    data = policy.model_dump(mode="json", exclude={"name", "description", "tools"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tierlock" / "selftest"


def cached_selftest(policy_path: str) -> tuple[SelftestReport, dict[str, str], bool]:
    """The selftest of `policy_path` on this host: from the host-wide cache when a passing run
    with the same key (`selftest_key`) is there, else run now (one process at a time per key).
    Returns the report, its key and whether it came from the cache. Only passing reports are
    cached: a failing host is probed again next time."""
    import fcntl
    import hashlib

    key = selftest_key(policy_path)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    entry = cache / f"{digest}.json"
    with open(cache / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(entry.read_text())
            if data.get("key") == key and data.get("ok") is True:
                probes = tuple(ProbeResult(p["id"], p["held"] is True, p["detail"])
                               for p in data["probes"])  # fmt: skip
                return SelftestReport(data["policy"], data["policy_hash"], probes), key, True
        except (OSError, ValueError, KeyError, TypeError):
            pass
        report = anyio.run(run_selftest, policy_path)
        if report.ok:
            tmp = entry.with_suffix(".tmp")
            tmp.write_text(json.dumps({**report.payload(), "key": key}))
            os.replace(tmp, entry)
        return report, key, False
