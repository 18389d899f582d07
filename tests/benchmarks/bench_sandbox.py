"""Per-sample sandbox overhead: the tierlock provider vs raw docker-py vs a docker-CLI baseline.

One sample's lifecycle is: create + start a container, run N commands, remove it. Measured side by
side, interleaved round by round (so load from other work hits all three alike):

- provider: `sample_init` (policy load, create, conformance read-back, start, kernel check,
  transcript record), N × `exec`, `sample_cleanup` (evidence, remove);
- docker-py: `create_container(same settings)` + `start`, N × `exec_run`, `remove(force=True)`;
- docker CLI: `docker run -d`, N × `docker exec`, `docker rm -f`, one subprocess per call;
- compose-pattern: the calls Inspect's compose-based sandbox makes per sample (image check,
  up, two ps, exec pwd, root probe, N × exec under `timeout`, down) as plain docker CLI calls, a
  lower bound for it: Inspect's built-in docker sandbox itself refuses this Engine (< 24.0.6), and
  the compose plugin is not installed here.

Run: `python tests/benchmarks/bench_sandbox.py [--rounds 8] [--execs 5]`. Prints means and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import anyio

from tierlock.sandbox import load_policy
from tierlock.sandbox._docker import create_container, get_client
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._labels import object_labels
from tierlock.sandbox._provider import TierlockSandboxEnvironment
from tierlock.sandbox._translate import container_settings

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "tool-restricted.yaml")
CMD = ["sh", "-c", "echo hello"]


async def provider_sample(execs: int) -> None:
    envs = await TierlockSandboxEnvironment.sample_init("bench", POLICY, {})
    env = envs["default"]
    for _ in range(execs):
        r = await env.exec(CMD)
        assert r.stdout == "hello\n"
    await TierlockSandboxEnvironment.sample_cleanup("bench", POLICY, envs, False)


def raw_sample(execs: int, settings: dict) -> None:
    client = get_client()
    c = create_container(client, settings)
    c.start()
    for _ in range(execs):
        r = c.exec_run(CMD)
        assert r.output == b"hello\n"
    c.remove(force=True)


def cli_sample(execs: int, image: str) -> None:
    def sh(*args: str) -> str:
        return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout

    cid = sh("run", "-d", "--init", "--network", "none", "--read-only", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges:true", "--user", "1000:1000",
             "--memory", "512m", "--memory-swap", "512m", "--pids-limit", "256", "--cpus", "1",
             "--tmpfs", "/workspace:size=64m,uid=1000,gid=1000", "--tmpfs", "/tmp:size=64m",
             "--label", "tierlock.project=bench", image, "sleep", "infinity").strip()
    for _ in range(execs):
        assert sh("exec", cid, *CMD) == "hello\n"
    sh("rm", "-f", cid)


def compose_pattern_sample(execs: int, image: str) -> None:
    """The docker-CLI calls Inspect's compose sandbox makes per sample (config, up --wait, two ps,
    exec pwd, a root probe, one exec per command, down), each `compose` call replaced by its
    plain-docker equivalent. A lower bound: real compose calls do more work each."""

    def sh(*args: str) -> str:
        return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout

    sh("image", "inspect", "--format", "{{.Id}}", image)  # compose config / image check
    cid = sh("run", "-d", "--init", "--network", "none", "--read-only", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges:true", "--user", "1000:1000",
             "--memory", "512m", "--memory-swap", "512m", "--pids-limit", "256", "--cpus", "1",
             "--tmpfs", "/workspace:size=64m,uid=1000,gid=1000", "--tmpfs", "/tmp:size=64m",
             "--label", "tierlock.project=bench", image, "sleep", "infinity").strip()
    for _ in range(2):
        sh("ps", "--filter", f"id={cid}", "--format", "{{.ID}} {{.Status}}")
    sh("exec", cid, "pwd")
    sh("exec", "-u", "root", cid, "sh", "-c", "id -u")
    for _ in range(execs):
        assert sh("exec", cid, "/usr/bin/timeout", "-k", "5s", "60s", *CMD) == "hello\n"
    sh("rm", "-f", "-v", cid)


def builtin_docker_note() -> str:
    try:
        from inspect_ai.util._sandbox.docker.prereqs import validate_prereqs

        anyio.run(validate_prereqs)
        return "Inspect's built-in docker sandbox accepts this Engine (not measured here)."
    except Exception as e:
        return f"Inspect's built-in docker sandbox refuses this machine: {str(e).strip()[:160]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--execs", type=int, default=5)
    args = ap.parse_args()
    client = get_client()
    image = ensure_image(client)
    policy = load_policy(POLICY)
    settings = container_settings(policy, image=image, labels=object_labels(role="bench"))
    times: dict[str, list[float]] = {"provider": [], "docker-py": [], "docker CLI": [],
                                     "compose-pattern": []}
    runs = {
        "provider": lambda: anyio.run(provider_sample, args.execs),
        "docker-py": lambda: raw_sample(args.execs, settings),
        "docker CLI": lambda: cli_sample(args.execs, image),
        "compose-pattern": lambda: compose_pattern_sample(args.execs, image),
    }
    for fn in runs.values():  # warm-up (imports, first connections)
        fn()
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    print(f"per-sample lifecycle: create+start, {args.execs} execs, remove "
          f"({args.rounds} rounds, median seconds)")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, m in med.items():
        print(f"  {name:<15} {m:6.3f}s   (min {min(times[name]):.3f}, max {max(times[name]):.3f})")
    print(f"provider / docker-py   = {med['provider'] / med['docker-py']:.2f}x  (aim <= 1.3x)")
    print(f"docker CLI / provider  = {med['docker CLI'] / med['provider']:.2f}x  "
          "(one docker CLI subprocess per call)")
    print(f"compose-pattern / provider = {med['compose-pattern'] / med['provider']:.2f}x  "
          "(the calls Inspect's compose sandbox makes per sample, as plain docker CLI calls)")
    print(builtin_docker_note())


if __name__ == "__main__":
    main()
