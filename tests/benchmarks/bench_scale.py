"""Many samples at once through tierlock's provider: wall time, peak RSS, peak Docker objects.

Each sample is `sample_init` (for the networked tier: its own internal network in a /28 of
`$TIERLOCK_SUBNET_POOL`, the `api` sidecar and the egress proxy, each conformance-checked), one
command (networked: a request to the `api` sidecar by name, checked), `sample_cleanup`; N samples,
C at a time, in this one process. A thread counts this run's containers and networks every
0.25 s; after the run (and `task_cleanup`) none may be left.

Run: `python tests/benchmarks/bench_scale.py` (64 networked samples, 16 at a time);
`--tool-restricted` for 256 tool-restricted samples at 16; `--samples`, `--concurrency` to size.
Concurrency above ~30 networked samples is what Docker's default address pools could not hold.
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from pathlib import Path

import anyio

from tierlock.sandbox import SandboxConfig, ServiceSpec
from tierlock.sandbox._docker import get_client
from tierlock.sandbox._labels import RUN_LABEL, run_id
from tierlock.sandbox._provider import TierlockSandboxEnvironment

POLICIES = Path(__file__).resolve().parents[2] / "policies"
API = (
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.send_header('Content-Length', '2')\n"
    "        self.end_headers(); self.wfile.write(b'42')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"
)
FETCH = (
    "import urllib.request; print(urllib.request.urlopen('http://api:8000/', timeout=10).read())"
)


def config(networked: bool) -> SandboxConfig:
    if not networked:
        return SandboxConfig(policy=str(POLICIES / "tool-restricted.yaml"))
    api = ServiceSpec(
        command=["python3", "/srv/api/server.py"], files={"/srv/api/server.py": API}, port=8000
    )
    return SandboxConfig(policy=str(POLICIES / "networked.yaml"), services={"api": api})


async def one_sample(cfg: SandboxConfig, networked: bool) -> None:
    envs = await TierlockSandboxEnvironment.sample_init("bench-scale", cfg, {})
    try:
        env = envs["default"]
        if networked:
            r = await env.exec(["python3", "-c", FETCH])
            assert r.stdout.strip() == "b'42'", (r.stdout, r.stderr)
        else:
            r = await env.exec(["sh", "-c", "echo hello"])
            assert r.stdout == "hello\n", (r.stdout, r.stderr)
    finally:
        await TierlockSandboxEnvironment.sample_cleanup("bench-scale", cfg, envs, False)


class ObjectCounter:
    """Counts this run's containers and networks in a thread; keeps the peak."""

    def __init__(self) -> None:
        self.client = get_client()
        self.flt = {"label": f"{RUN_LABEL}={run_id()}"}
        self.peak = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def count(self) -> tuple[int, int]:
        containers = len(self.client.api.containers(all=True, filters=self.flt))
        networks = len(self.client.api.networks(filters=self.flt))
        return containers, networks

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            c, n = self.count()
            if c + n > sum(self.peak):
                self.peak = (c, n)

    def __enter__(self) -> ObjectCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def run(samples: int, concurrency: int, networked: bool) -> list[str]:
    cfg = config(networked)
    limit = anyio.Semaphore(concurrency)
    errors: list[str] = []

    async def guarded() -> None:
        async with limit:
            try:
                await one_sample(cfg, networked)
            except Exception as e:  # every failure counts, the run goes on
                errors.append(f"{type(e).__name__}: {str(e)[:200]}")

    async with anyio.create_task_group() as tg:
        for _ in range(samples):
            tg.start_soon(guarded)
    await TierlockSandboxEnvironment.task_cleanup("bench-scale", cfg, True)
    return errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool-restricted", action="store_true", help="256 tool-restricted samples")
    ap.add_argument("--samples", type=int, default=None, help="default 64 (256 tool-restricted)")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    networked = not args.tool_restricted
    samples = args.samples or (64 if networked else 256)
    tier = "networked (allowlist: own network, api sidecar, egress proxy)"
    if not networked:
        tier = "tool-restricted (no network)"
    os.environ.setdefault("INSPECT_LOG_LEVEL", "warning")
    load_before = os.getloadavg()
    anyio.run(TierlockSandboxEnvironment.task_init, "bench-scale", config(networked))
    with ObjectCounter() as counter:
        start = time.perf_counter()
        errors = anyio.run(run, samples, args.concurrency, networked)
        wall = time.perf_counter() - start
    left = counter.count()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_after = os.getloadavg()
    print(f"{samples} {tier} samples, {args.concurrency} at a time, one process")
    print(
        f"  wall time        {wall:7.1f} s  ({wall / samples * args.concurrency:.2f} s per sample)"
    )
    print(f"  succeeded        {samples - len(errors)} / {samples}")
    print(f"  peak RSS         {rss_mb:7.1f} MB (this process)")
    print(
        f"  peak objects     {counter.peak[0]} containers + {counter.peak[1]} networks (this run)"
    )
    print(f"  left afterwards  {left[0]} containers + {left[1]} networks")
    print(
        f"  load average     {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"{os.cpu_count()} CPUs"
    )
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    if errors or any(left):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
