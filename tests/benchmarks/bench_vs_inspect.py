"""tierlock's provider side by side with Inspect's own sandboxes, on one Docker Engine, in one command.

The same eval — N samples × K bash calls, M at a time, scripted by mockllm — is run with:

- (a) `local`: Inspect's local sandbox (no container at all): the floor;
- (b) `docker`: Inspect's docker sandbox (Compose v2), with a compose file hardened by hand to
  match policies/tool-restricted.yaml (read-only root, tmpfs /workspace and /tmp with sizes,
  cap_drop ALL, no-new-privileges, user 1000:1000, network_mode none, memory/pids/cpus, init);
- (c) `tierlock`: `sandbox=("tierlock", "policies/tool-restricted.yaml")`;
- (c') `tierlock-pool`: (c) with the warm pool on (`TIERLOCK_WARM_POOL`, `--pool`, default the
  concurrency M); prints how many containers the pool made, handed out and threw away;
- (d) `raw`: no Inspect, the bare docker-py lifecycle per sample with the same settings as (c)
  (create + start, K `exec_run`, remove), M threads.

Each variant runs in a fresh child process per round (so none inherits another's clients, threads
or caches), the order rotated round by round; the wall time is the `eval()` call (for (d) the thread
pool). Every sample's tool outputs are checked (the model asks for `echo sample-I-call-J`), so lost
output counts as a failure rather than as speed. Then the exec round trip: one command through the
provider's `exec` vs a raw `exec_run` on the same container, interleaved (and Inspect docker's exec
on its own compose container when Compose v2 answers).

Inspect's docker sandbox needs Engine >= 24.0.6 and Compose v2; tests/benchmarks/engine24.sh runs
a second, newer engine beside the running one for the duration of one command:

    bash tests/benchmarks/engine24.sh python tests/benchmarks/bench_vs_inspect.py
    python tests/benchmarks/bench_vs_inspect.py --variants local,tierlock,raw   # the running engine
    python tests/benchmarks/bench_vs_inspect.py --variants local,tierlock,tierlock-pool,raw

Prints per variant the median and range of wall time, the overhead over (a), the ratios (b)/(c)
and (c)/(d), and the load average around each run (the figures are noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "tool-restricted.yaml")
VARIANTS = ("local", "docker", "tierlock", "tierlock-pool", "raw")
LABEL = {"local": "(a) Inspect local", "docker": "(b) Inspect docker", "tierlock": "(c) tierlock",
         "tierlock-pool": "(c') tierlock + pool", "raw": "(d) raw docker-py"}
COMPOSE = """\
services:
  default:
    image: {image}
    x-local: true
    command: ["sleep", "infinity"]
    init: true
    read_only: true
    tmpfs:
      - /workspace:size=64m,uid=1000,gid=1000,mode=0700
      - /tmp:size=64m
    working_dir: /workspace
    user: "1000:1000"
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    network_mode: none
    mem_limit: 512m
    memswap_limit: 512m
    pids_limit: 256
    cpus: 1.0
    environment: {{LANG: C.UTF-8, HOME: /workspace}}
"""


def command(i: int, j: int) -> str:
    return f"echo sample-{i}-call-{j}"


def expected(i: int, j: int) -> str:
    return f"sample-{i}-call-{j}"


def base_image() -> str:
    from tierlock.sandbox._docker import get_client
    from tierlock.sandbox._images import ensure_image

    return ensure_image(get_client())


# --- child: one variant, once ---------------------------------------------------------------------
def scripted_model(calls: int, latency: float = 0.0) -> Any:
    """mockllm deciding from the sample's own messages (a list would be handed out across samples
    in arrival order); `usage` set so mockllm does not fetch a tokenizer. `latency`: seconds each
    answer takes (a real model's think time, during which the host's CPUs are free)."""
    from inspect_ai.model import (
        ChatMessageTool,
        ChatMessageUser,
        ModelOutput,
        ModelUsage,
        get_model,
    )

    async def respond(input: list[Any], tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        if latency:
            import anyio

            await anyio.sleep(latency)
        first = next(m for m in input if isinstance(m, ChatMessageUser))
        i = int(first.text.split()[-1])
        done = sum(isinstance(m, ChatMessageTool) for m in input)
        if done < calls:
            out = ModelOutput.for_tool_call("mockllm/model", "bash", {"command": command(i, done)})
        else:
            out = ModelOutput.from_content("mockllm/model", "done")
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    return get_model("mockllm/model", custom_outputs=respond)


def run_eval(variant: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ChatMessageTool
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    sandbox: Any
    if variant == "local":
        sandbox = "local"
    elif variant == "docker":
        compose = work / "compose.yaml"
        compose.write_text(COMPOSE.format(image=base_image()))
        sandbox = ("docker", str(compose))
    else:
        sandbox = ("tierlock", POLICY)
        os.environ["TIERLOCK_WARM_POOL"] = str(args.pool or args.concurrency) if variant == (
            "tierlock-pool") else "0"
    task = Task(dataset=[Sample(input=f"sample {i}", id=i) for i in range(args.samples)],
                solver=[use_tools(bash(timeout=60)), generate()], sandbox=sandbox,
                name=f"bench_{variant}")
    model = scripted_model(args.calls, args.latency)
    start = time.perf_counter()
    logs = eval(task, model=model, max_samples=args.concurrency,
                max_sandboxes=args.max_sandboxes or args.concurrency,
                log_dir=str(work / "logs"), display="none", log_level="error", score=False)
    seconds = time.perf_counter() - start
    bad: list[str] = []
    pool: dict[str, int] = {}
    if variant == "tierlock-pool":
        from tierlock.sandbox import _warm_pool

        pool = dict(_warm_pool.stats)
    log = logs[0]
    if log.status != "success":
        bad.append(f"eval status {log.status}: {log.error.message if log.error else ''}"[:300])
    for sample in log.samples or []:
        i = int(sample.id)
        outs = [m for m in sample.messages if isinstance(m, ChatMessageTool)]
        got = [(m.text.strip(), m.error.message if m.error else None) for m in outs]
        want = [(expected(i, j), None) for j in range(args.calls)]
        if got != want:
            bad.append(f"sample {i}: {got!r}"[:300])
    if len(log.samples or []) != args.samples:
        bad.append(f"{len(log.samples or [])} samples in the log, not {args.samples}")
    return {"seconds": seconds, "bad": bad, "pool": pool}


def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    import docker

    from tierlock.sandbox import load_policy
    from tierlock.sandbox._docker import create_container
    from tierlock.sandbox._labels import object_labels
    from tierlock.sandbox._translate import container_settings

    policy = load_policy(POLICY)
    settings = container_settings(policy, image=base_image(), labels=object_labels(role="bench"))
    client = docker.from_env(max_pool_size=args.concurrency * 2)
    user = str(policy.process.user)
    workdir = str(policy.filesystem.workdir)

    def sample(i: int) -> list[str]:
        c = create_container(client, settings)
        bad = []
        try:
            c.start()
            for j in range(args.calls):
                r = c.exec_run(["bash", "--login", "-c", command(i, j)], user=user, workdir=workdir)
                text = (r.output or b"").decode().strip()
                if r.exit_code != 0 or text != expected(i, j):
                    bad.append(f"sample {i} call {j}: exit {r.exit_code} {text!r}"[:300])
        finally:
            c.remove(force=True)
        return bad

    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(sample, range(args.samples)))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bad": [b for r in results for b in r]}


def run_exec_round_trip(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Provider `exec` vs raw `exec_run` on the provider's own container, interleaved; then
    Inspect docker's `exec` on its compose container (if Compose v2 answers)."""
    import anyio
    import docker

    from tierlock.sandbox._provider import TierlockSandboxEnvironment as Tierlock

    cmd = ["sh", "-c", "echo hello"]
    result: dict[str, Any] = {"provider": [], "raw": [], "inspect_docker": [], "lost": 0}

    async def tierlock_pair() -> None:
        envs = await Tierlock.sample_init("bench", POLICY, {})
        env = envs["default"]
        try:
            container = docker.from_env().containers.get(env.container_id)  # type: ignore[attr-defined]
            user = str(env.policy.process.user)  # type: ignore[attr-defined]
            for n in range(args.exec_calls + 5):  # 5 warm-up calls, not counted
                t = time.perf_counter()
                r = await env.exec(cmd)
                dt_provider = time.perf_counter() - t
                t = time.perf_counter()
                raw = container.exec_run(cmd, user=user)
                dt_raw = time.perf_counter() - t
                if r.stdout != "hello\n":
                    raise SystemExit(f"provider exec returned {r.stdout!r}")
                result["lost"] += raw.output != b"hello\n"
                if n >= 5:
                    result["provider"].append(dt_provider)
                    result["raw"].append(dt_raw)
        finally:
            await Tierlock.sample_cleanup("bench", POLICY, envs, False)

    async def inspect_docker() -> None:
        from inspect_ai.util._sandbox.docker.docker import DockerSandboxEnvironment as Docker

        compose = work / "compose.yaml"
        compose.write_text(COMPOSE.format(image=base_image()))
        await Docker.task_init("bench", str(compose))
        envs = await Docker.sample_init("bench", str(compose), {})
        try:
            env = envs["default"]
            for n in range(args.exec_calls + 5):
                t = time.perf_counter()
                r = await env.exec(cmd)
                if r.stdout != "hello\n":
                    raise SystemExit(f"Inspect docker exec returned {r.stdout!r}")
                if n >= 5:
                    result["inspect_docker"].append(time.perf_counter() - t)
        finally:
            await Docker.sample_cleanup("bench", str(compose), envs, False)
            await Docker.task_cleanup("bench", str(compose), True)

    anyio.run(tierlock_pair)
    if compose_v2():
        anyio.run(inspect_docker)
    return result


def compose_v2() -> bool:
    r = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip().startswith("2")


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tierlock-bench-") as tmp:
        if args.child == "exec":
            out = run_exec_round_trip(args, Path(tmp))
        elif args.child == "raw":
            out = run_raw(args)
        else:
            out = run_eval(args.child, args, Path(tmp))
    print("RESULT " + json.dumps(out))


# --- parent: rounds of children, then the summary -------------------------------------------------
def spawn(name: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", name, "--samples", str(args.samples),
            "--calls", str(args.calls), "--concurrency", str(args.concurrency),
            "--exec-calls", str(args.exec_calls), "--pool", str(args.pool),
            "--max-sandboxes", str(args.max_sandboxes), "--latency", str(args.latency)]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tierlock-bench-home-") as home:
        # Inspect's bash tool runs `bash --login`: in the local sandbox that is the host's shell,
        # whose profile (here ~/.profile -> ~/.bashrc -> pyenv init) would run in every call and
        # slow the floor; an empty HOME leaves the system profile only, as in the containers.
        env = dict(os.environ, HOME=home) if name == "local" else None
        p = subprocess.run(argv, capture_output=True, text=True, timeout=args.child_timeout,
                           env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-15:]
        raise SystemExit(f"{name}: child exited {p.returncode}\n" + "\n".join(tail))
    out: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    out["load"] = (load_before, os.getloadavg()[0])
    return out


def engine_line() -> str:
    r = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                       capture_output=True, text=True)
    compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True,
                             text=True)
    return (f"engine {r.stdout.strip() or '?'} ({os.environ.get('DOCKER_HOST', 'default socket')}), "
            f"compose {compose.stdout.strip() if compose.returncode == 0 else 'absent'}, "
            f"{os.cpu_count()} cpus")


def summary(times: dict[str, list[float]], loads: list[float]) -> None:
    med = {v: statistics.median(ts) for v, ts in times.items() if ts}
    print("\nwall time per eval (seconds):")
    for v, ts in times.items():
        if not ts:
            continue
        over = ""
        if "local" in med and v != "local":
            over = f"   overhead over (a): {med[v] - med['local']:+.1f}s ({med[v] / med['local']:.2f}x)"
        print(f"  {LABEL[v]:<20} median {med[v]:6.1f}  range {min(ts):.1f}-{max(ts):.1f}{over}")
    if "docker" in med and "tierlock" in med:
        print(f"  (b)/(c) = {med['docker'] / med['tierlock']:.2f}x   (Inspect docker / tierlock)")
        if "local" in med:
            extra_b, extra_c = med["docker"] - med["local"], med["tierlock"] - med["local"]
            if extra_c > 0:
                print(f"  overhead (b)/(c) = {extra_b / extra_c:.2f}x   (container cost over (a))")
    if "tierlock" in med and "raw" in med:
        print(f"  (c)/(d) = {med['tierlock'] / med['raw']:.2f}x   (tierlock / raw docker-py)")
    if "tierlock-pool" in med:
        for ref, name in (("local", "(a)"), ("tierlock", "(c)"), ("raw", "(d)")):
            if ref in med:
                print(f"  (c')/{name} = {med['tierlock-pool'] / med[ref]:.2f}x")
    print(f"  load average (1 min) around the runs: {min(loads):.1f}-{max(loads):.1f}")


def exec_summary(r: dict[str, Any], load: tuple[float, float]) -> None:
    print(f"\nexec round trip (`sh -c 'echo hello'`, median of {len(r['provider'])}, ms):")
    prov, raw = statistics.median(r["provider"]) * 1e3, statistics.median(r["raw"]) * 1e3
    print(f"  tierlock provider exec   {prov:6.1f}")
    print(f"  raw exec_run, same box   {raw:6.1f}   (outputs lost by exec_run: {r['lost']})")
    if r["inspect_docker"]:
        print(f"  Inspect docker exec      {statistics.median(r['inspect_docker']) * 1e3:6.1f}")
    print(f"  provider / exec_run = {prov / raw:.2f}x   (load {load[0]:.1f}-{load[1]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=64, help="N samples per eval (64)")
    ap.add_argument("--calls", type=int, default=2, help="K bash calls per sample (2)")
    ap.add_argument("--concurrency", type=int, default=8, help="M samples at a time (8)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, order rotated (3)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="subset of " + ",".join(VARIANTS))
    ap.add_argument("--exec-calls", type=int, default=50, help="exec round trips measured (50)")
    ap.add_argument("--no-exec", action="store_true", help="skip the exec round trip")
    ap.add_argument("--pool", type=int, default=0, help="warm pool size for tierlock-pool "
                    "(default: the concurrency)")
    ap.add_argument("--max-sandboxes", type=int, default=0,
                    help="Inspect's max_sandboxes (default: the concurrency)")
    ap.add_argument("--latency", type=float, default=0.0,
                    help="seconds each model answer takes (0: mockllm answers at once)")
    ap.add_argument("--child-timeout", type=float, default=1800)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "docker" in variants and not compose_v2():
        raise SystemExit("Inspect's docker sandbox needs Compose v2 and Engine >= 24.0.6: run under "
                         "tests/benchmarks/engine24.sh, or leave out --variants docker")
    print(f"{args.samples} samples x {args.calls} bash calls, {args.concurrency} at a time, "
          f"{args.rounds} rounds, model latency {args.latency:g}s, max_sandboxes "
          f"{args.max_sandboxes or args.concurrency}, pool {args.pool or args.concurrency}; "
          f"{engine_line()}")
    times: dict[str, list[float]] = {v: [] for v in variants}
    loads: list[float] = []
    failed = False
    for rnd in range(args.rounds):
        order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
        for v in order:
            out = spawn(v, args)
            loads.extend(out["load"])
            status = "ok" if not out["bad"] else f"{len(out['bad'])} WRONG, e.g. {out['bad'][0][:160]}"
            pool = out.get("pool") or {}
            made = (f"  pool: made {pool.get('created', 0)}, handed out {pool.get('taken', 0)}, "
                    f"unused {pool.get('discarded', 0)}, peak {pool.get('peak', 0)} sandboxes"
                    if v == "tierlock-pool" else "")
            print(f"round {rnd + 1} {LABEL[v]:<20} {out['seconds']:6.1f}s  "
                  f"load {out['load'][0]:.1f}->{out['load'][1]:.1f}  outputs {status}{made}",
                  flush=True)
            failed |= bool(out["bad"]) and v != "raw"
            times[v].append(out["seconds"])
    summary(times, loads)
    if not args.no_exec:
        r = spawn("exec", args)
        exec_summary(r, r["load"])
    if failed:
        raise SystemExit("some samples' tool outputs were wrong (see above)")


if __name__ == "__main__":
    main()
