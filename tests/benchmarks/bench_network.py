"""Benchmark: per-sample network setup (internal, allowlist with its squid proxy) and teardown.

Times, side by side on this daemon:
  - raw:        `docker network create --internal` + remove (docker-py), the floor for a network
  - internal:   `create_sample_network` in internal mode (no sidecars) + teardown
  - allowlist:  `create_sample_network` in allowlist mode (squid sidecar, ready) + teardown
  - squid:      from the proxy's `start` to squid listening on its port
and prints the ratios. Run: `python tests/benchmarks/bench_network.py [-n 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import anyio
    import docker

    from tierlock.sandbox._network import create_sample_network
    from tierlock.sandbox._policy import Policy

    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    n = ap.parse_args().n
    client = docker.from_env()
    run = f"bench-{uuid.uuid4().hex[:8]}"
    labels = {"tierlock.project": "tierlock", "tierlock.run": run}
    outside = client.networks.create(f"tlbench-outside-{run}", labels=labels)

    def policy(mode: str) -> Policy:
        return Policy.model_validate(
            {
                "name": "bench",
                "tier": "networked",
                "network": {"mode": mode, "allow": ["allowed.test"]},
            }
        )

    import tierlock.sandbox._network as net_mod

    squid: list[float] = []
    wait_listening = net_mod.wait_listening

    async def timed_wait(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        await wait_listening(*args, **kwargs)
        squid.append(time.perf_counter() - t0)

    net_mod.wait_listening = timed_wait  # type: ignore[assignment]
    times: dict[str, list[float]] = {}
    try:
        # warm up: images present, egress network known
        s = anyio.run(
            lambda: create_sample_network(
                client, policy("allowlist"), {}, labels, egress_network=outside.name
            )
        )
        anyio.run(s.teardown)
        squid.clear()
        for _ in range(n):
            t = time.perf_counter()
            net = client.networks.create(
                f"tlbench-{uuid.uuid4().hex[:8]}", internal=True, labels=labels
            )
            mid = time.perf_counter()
            net.remove()
            times.setdefault("raw network create", []).append(mid - t)
            times.setdefault("raw network remove", []).append(time.perf_counter() - mid)
            for mode in ("internal", "allowlist"):
                t = time.perf_counter()
                s = anyio.run(
                    lambda m=mode: create_sample_network(
                        client, policy(m), {}, labels, egress_network=outside.name
                    )
                )
                mid = time.perf_counter()
                anyio.run(s.teardown)
                times.setdefault(f"{mode} setup", []).append(mid - t)
                times.setdefault(f"{mode} teardown", []).append(time.perf_counter() - mid)
    finally:
        outside.remove()
    times["squid start->listening"] = squid
    med = {k: statistics.median(v) for k, v in times.items() if v}
    for k, v in med.items():
        print(f"{k:24s} median {v * 1000:7.0f} ms  (n={len(times[k])})")
    print(
        f"internal setup / raw network create  = "
        f"{med['internal setup'] / med['raw network create']:.2f}x"
    )
    print(
        f"allowlist setup / raw network create = "
        f"{med['allowlist setup'] / med['raw network create']:.2f}x"
    )


if __name__ == "__main__":
    main()
