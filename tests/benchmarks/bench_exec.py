"""Exec latency: tierlock's `run_exec` (its own connection per exec) vs docker-py's raw-socket read
(the way tierlock read before, which can lose output) vs docker-py's `exec_run`.

Interleaved call by call in one sandbox of the tool-restricted policy, sequentially and then 8 at a
time. Every output is checked (a benchmark that does not check its outputs would not notice the
old reader losing them): the lost ones are counted and printed.

Run: `python tests/benchmarks/bench_exec.py [--calls 200]`. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from tierlock.sandbox._exec import run_exec
from tierlock.sandbox._provider import TierlockSandboxEnvironment

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "tool-restricted.yaml")
CMD = ["sh", "-c", "echo hello; echo there >&2"]
WANT = (b"hello\n", b"there\n")


def old_read(api: Any, cid: str) -> tuple[bytes, bytes]:
    """exec_create, exec_start(socket=True), frames from the raw socket, exec_inspect."""
    exec_id = api.exec_create(cid, CMD, user="1000:1000")["Id"]
    sock = api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    out = {1: b"", 2: b""}
    buf = b""
    try:
        while True:
            while len(buf) < 8 and (data := raw.recv(65536)):
                buf += data
            if len(buf) < 8:
                break
            stream, size = struct.unpack(">BxxxL", buf[:8])
            while len(buf) < 8 + size and (data := raw.recv(65536)):
                buf += data
            out[stream] += buf[8 : 8 + size]
            buf = buf[8 + size :]
    finally:
        sock.close()
    api.exec_inspect(exec_id)
    return out[1], out[2]


def new_read(api: Any, cid: str) -> tuple[bytes, bytes]:
    r = run_exec(api, cid, CMD, user="1000:1000", limit=1 << 20, deadline=60)
    return r.stdout, r.stderr


def exec_run(api: Any, cid: str) -> tuple[bytes, bytes]:
    """docker-py's own read, as `exec_run` does it: exec_start(demux=True), then exec_inspect."""
    exec_id = api.exec_create(cid, CMD, user="1000:1000")["Id"]
    r = api.exec_start(exec_id, demux=True)
    api.exec_inspect(exec_id)
    return r[0] or b"", r[1] or b""


def measure(
    fns: dict[str, Callable[[Any, str], tuple[bytes, bytes]]],
    api: Any,
    cid: str,
    calls: int,
    threads: int,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    lost = dict.fromkeys(fns, 0)

    def one(name: str) -> None:
        t = time.perf_counter()
        got = fns[name](api, cid)
        times[name].append(time.perf_counter() - t)
        if got != WANT:
            lost[name] += 1

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(calls):
            list(pool.map(one, [n for _ in range(threads) for n in fns]))
    return times, lost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()

    async def init() -> TierlockSandboxEnvironment:
        env = (await TierlockSandboxEnvironment.sample_init("bench-exec", POLICY, {}))["default"]
        assert isinstance(env, TierlockSandboxEnvironment)
        return env

    env = anyio.run(init)
    try:
        from tierlock.sandbox._docker import get_client

        api, cid = get_client().api, env.container_id
        fns = {
            "run_exec (new)": new_read,
            "raw socket (old)": old_read,
            "docker-py exec_run": exec_run,
        }
        measure(fns, api, cid, 3, 1)  # warm-up
        for threads in (1, 8):
            calls = args.calls if threads == 1 else max(args.calls // 8, 1)
            times, lost = measure(fns, api, cid, calls, threads)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{threads} at a time, {len(times['run_exec (new)'])} calls each "
                "(median ms per exec; outputs lost):"
            )
            for name, m in med.items():
                print(f"  {name:<22} {m * 1000:7.1f} ms   lost {lost[name]}")
            print(
                f"  run_exec / old raw read     = {med['run_exec (new)'] / med['raw socket (old)']:.2f}x"
            )
            print(
                f"  run_exec / docker-py        = "
                f"{med['run_exec (new)'] / med['docker-py exec_run']:.2f}x"
            )
    finally:

        async def done() -> None:
            await TierlockSandboxEnvironment.sample_cleanup(
                "bench-exec", POLICY, {"default": env}, False
            )

        anyio.run(done)


if __name__ == "__main__":
    main()
