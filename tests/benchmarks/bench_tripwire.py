"""Per-command cost of the tripwire checks after each command (`sandbox._tripwire.after_command`).

One sandbox per policy, made by `sample_init` outside an eval; the same `exec` of a small command
interleaved with the sandbox's tripwire on and off. The checks run as for a model's call (the
tool-call test is forced true), with a canary to look for: under the tool-restricted policy (read-
only root: the output is searched for canaries), a writable-root variant of it (plus the overlay
upper-dir walk) and the networked policy (plus the egress proxy's new log lines).

Run: `python tests/benchmarks/bench_tripwire.py [--calls 100]`. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import tierlock.sandbox._tripwire as tripwire
from tierlock.sandbox._provider import TierlockSandboxEnvironment

ROOT = Path(__file__).resolve().parents[2]
CMD = ["bash", "--login", "-c", "ls /workspace; echo done"]


async def _measure(policy: str, calls: int) -> tuple[float, float, float]:
    await TierlockSandboxEnvironment.task_init("bench", policy)
    envs = await TierlockSandboxEnvironment.sample_init("bench", policy, {})
    env: Any = envs["default"]
    box = env._box
    tw = box.tripwire
    tw.canaries = ["TLK-0123456789abcdef0123456789abcdef"]
    tw.mode = "record"
    on: list[float] = []
    off: list[float] = []
    try:
        for _ in range(3):
            await env.exec(CMD)
        tw.costs.clear()
        for _ in range(calls):
            for enabled, out in ((True, on), (False, off)):
                box.tripwire = tw if enabled else None
                start = time.perf_counter()
                result = await env.exec(CMD)
                out.append(time.perf_counter() - start)
                assert result.success and "done" in result.stdout
        assert tw.tripped is None
    finally:
        box.tripwire = tw
        await TierlockSandboxEnvironment.sample_cleanup("bench", policy, envs, False)
    return statistics.median(off), statistics.median(on), statistics.median(tw.costs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    tripwire.in_tool_call = lambda: True  # as inside a model's tool call
    with tempfile.TemporaryDirectory() as tmp:
        writable = Path(tmp) / "writable-root.yaml"
        writable.write_text(
            f"extends: {ROOT / 'policies' / 'tool-restricted.yaml'}\nname: writable-root\n"
            "filesystem:\n  read_only_root: false\nunsafe:\n  allow: [writable-root]\n"
            "  reason: benchmark of the upper-dir walk\n"
        )
        policies = {
            "tool-restricted (canaries)": str(ROOT / "policies" / "tool-restricted.yaml"),
            "writable root (+ upper-dir walk)": str(writable),
            "networked (+ proxy log)": str(ROOT / "policies" / "networked.yaml"),
        }
        for name, policy in policies.items():
            try:
                off, on, check = anyio.run(_measure, policy, args.calls)
            except Exception as e:  # e.g. no egress proxy image here
                print(f"{name}: not measured ({type(e).__name__}: {e})")
                continue
            print(
                f"{name}: exec median {off * 1000:.1f} ms without, {on * 1000:.1f} ms with "
                f"tripwires (ratio {on / off:.2f}); the checks themselves {check * 1000:.2f} ms"
            )


if __name__ == "__main__":
    main()
