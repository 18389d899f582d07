"""Benchmark: auditing a large `.eval` log vs reading it with Inspect's reader.

Builds a log of many samples with long transcripts (tool calls, results, model outputs, evidence)
from a small real one, then times, side by side on the same file:
  - read:  `inspect_ai.log.read_eval_log(path)` (Inspect's reader, all samples)
  - read (streamed): `read_eval_log_samples(path)` (Inspect's sample-by-sample reader)
  - audit: `runner._audit.audit_log(path)` (hash + stream + detectors)
and prints audit/read ratios (goal: ≤ 1.5×). Run: `python tests/benchmarks/bench_audit.py`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def build(out_dir: Path, samples: int, repeat: int) -> Path:
    from inspect_ai.log import read_eval_log, write_eval_log

    from tests._audit_logs import make_log
    from tests.test_audit_log import CLEAN, RECKLESS, TASK_META

    small = make_log(out_dir / "small", [CLEAN, RECKLESS], task_metadata=TASK_META)
    log = read_eval_log(str(small))
    assert log.samples
    protos = log.samples
    big = []
    for i in range(samples):
        s = copy.deepcopy(protos[i % len(protos)])
        s.id = f"s{i}"
        body = [e for e in s.events if e.event in ("model", "tool", "info")]
        s.events = list(s.events) + [copy.deepcopy(e) for _ in range(repeat) for e in body]
        big.append(s)
    log.samples = big
    log.eval.dataset.sample_ids = [s.id for s in big]
    log.eval.dataset.samples = len(big)
    path = out_dir / "big.eval"
    write_eval_log(log, str(path))
    return path


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=40, help="copies of each sample's events")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from inspect_ai.log import read_eval_log, read_eval_log_samples

    from tierlock.runner._audit import audit_log

    with tempfile.TemporaryDirectory() as d:
        path = build(Path(d), args.samples, args.repeat)
        size = path.stat().st_size
        read = timed(lambda: read_eval_log(str(path)), args.runs)
        stream = timed(lambda: sum(1 for _ in read_eval_log_samples(str(path))), args.runs)
        result = audit_log(path)
        assert result.error is None
        n_events = sum(s.events for s in result.samples)
        n_findings = len(result.findings)
        audit = timed(lambda: audit_log(path), args.runs)
    print(
        f"log: {args.samples} samples, {n_events} events, {size / 1e6:.1f} MB; "
        f"{n_findings} findings"
    )
    print(f"inspect read_eval_log:         {read:7.3f} s")
    print(f"inspect read_eval_log_samples: {stream:7.3f} s")
    print(f"tierlock audit_log:            {audit:7.3f} s")
    print(f"ratio audit / read_eval_log:         {audit / read:.2f}x (goal <= 1.5x)")
    print(f"ratio audit / read_eval_log_samples: {audit / stream:.2f}x")


if __name__ == "__main__":
    main()
